"""What the benchmarks share: a configured local stack, an API client for it, status records read straight from
DynamoDB (uncounted), percentiles, verdicts, the revision a run measured, and the Markdown report's publication.
Each benchmark file keeps only its workload, its counting and its targets."""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # imported where used: bench.cost's children put a baseline tree's local_stack on the path first
    from local_stack.runner import LocalStack

REPO = Path(__file__).resolve().parent.parent
# The AWS services the product's code calls through its cached clients (what a benchmark counts).
SERVICES = ("dynamodb", "s3", "sqs", "sagemaker-runtime")
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def log(message: str, tag: str = "") -> None:
    """Progress on stderr (stdout is the report), stamped when the benchmark names itself."""
    prefix = f"[{tag} {time.strftime('%H:%M:%S')}] " if tag else ""
    print(prefix + message, file=sys.stderr, flush=True)


def publish(report: str, output: Path) -> None:
    print(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)


@contextmanager
def local_stack(**options: Any) -> Iterator[LocalStack]:
    """A started local stack on a free port with a scratch state directory (`Options` fields as keywords),
    stopped on the way out."""
    from local_stack.runner import LocalStack, Options, free_port

    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(Options(api_port=free_port("127.0.0.1"), state_dir=Path(state), **options))
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


def api_key(stack: LocalStack) -> str:
    """The key the local stack made for its first tenant."""
    return (stack.options.state_dir / "api-key").read_text().strip()


def api_client(stack: LocalStack, key: str | None = None, timeout: float = 60) -> httpx.Client:
    return httpx.Client(
        base_url=stack.urls["api"], headers={"Authorization": f"Bearer {key or api_key(stack)}"}, timeout=timeout
    )


def finished_records(ddb: Any, table: str, ids: list[str]) -> dict[str, dict[str, str]]:
    """The finished ones among these predictions' status records, read straight from DynamoDB (uncounted), 100 at
    a time: id, status and timestamps."""
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(ids), 100):
        request: dict[str, Any] = {
            table: {
                "Keys": [{"pk": {"S": f"PRED#{i}"}} for i in ids[start : start + 100]],
                "ProjectionExpression": "id, #s, created_at, started_at, completed_at",
                "ExpressionAttributeNames": {"#s": "status"},
                "ConsistentRead": True,
            }
        }
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"][table]:
                if item["status"]["S"] in TERMINAL:
                    found[item["id"]["S"]] = {k: v["S"] for k, v in item.items() if "S" in v}
            request = response.get("UnprocessedKeys") or {}
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def describe(config: str, tree: Path, rev: str) -> str:
    """What a configuration ran: a baseline revision, or this working tree and how far it is from its HEAD."""
    if config == "baseline":
        subject = git("log", "-1", "--format=%h (%cs) %s", rev)
        return "git " + textwrap.shorten(subject, 110, placeholder=" ...")
    dirty = [line for line in git("status", "--porcelain", cwd=tree).splitlines() if line]
    head = git("log", "-1", "--format=%h", "HEAD", cwd=tree)
    return f"this working tree (HEAD {head}" + (f" + {len(dirty)} uncommitted paths)" if dirty else ")")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count_requests(meter: Any) -> Any:
    """Register `meter` (anything with `register(events)`) on the product's cached AWS clients; call it once the
    stack has set the functions' environment, which the settings read."""
    from inference_core.dal.clients import client

    for service in SERVICES:
        meter.register(client(service).meta.events)
    return meter
