"""What the benchmarks share: a configured local stack, an API client for it, status records read straight from
DynamoDB (uncounted), percentiles, verdicts, the revision a run measured, and the Markdown report's publication.
Each benchmark file keeps only its workload, its counting and its targets."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # imported where used: bench.cost's children put a baseline tree's local_stack on the path first
    from local_stack.runner import LocalStack

REPO = Path(__file__).resolve().parent.parent
# The AWS services the product's code calls through its cached clients (what a benchmark counts).
SERVICES = ("dynamodb", "s3", "sqs", "sagemaker-runtime")
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
OTHER = "other"  # a request's owner when the meter cannot name one
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def wait_records(
    ddb: Any, table: str, ids: list[str], timeout: float = 600, poll: float = 0.2
) -> dict[str, dict[str, str]]:
    """Polls `finished_records` until every one of `ids` is finished or `timeout` has passed (then fewer)."""
    done: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        done.update(finished_records(ddb, table, [i for i in ids if i not in done]))
        if len(done) < len(ids):
            time.sleep(poll)
    return done


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


def strings(value: Any) -> list[str]:
    """Every string in a request's parameters, nested ones included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in strings(v)] if isinstance(value, list | tuple) else []


def operation_of(model: Any) -> str:
    return f"{model.service_model.service_name}.{model.name}"


def function_of(thread: str) -> str:
    """The event pumps' threads are named `<Function>-<n>`, the scheduler's `<Function>-schedule`; the rest is the
    API (uvicorn and its worker threads)."""
    name = thread.split("-", 1)[0]
    return name.removesuffix("Function") if name.endswith("Function") else "API"


@dataclass
class Meter:
    """Counts every request the product's clients send while `phase` is set, by phase, owner (`owner(params)`, or
    OTHER), function and service.operation, and endpoint invocations by InferenceId. Register with count_requests."""

    owner: Callable[[dict[str, Any]], str] | None = None
    phase: str | None = None
    counts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    inference_ids: Counter[str] = field(default_factory=Counter)  # InvokeEndpointAsync calls by InferenceId
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, events: Any) -> None:
        events.register("before-parameter-build.*.*", self.on_params)
        events.register("before-call.*.*", self.on_call)

    def on_params(self, params: dict[str, Any], context: dict[str, Any] | None, **_: Any) -> None:
        # A presigned URL emits this event too, but never before-call: only requests sent are counted.
        if self.phase is not None and context is not None:
            context["bench_owner"] = self.owner(params) if self.owner else OTHER
            context["bench_inference_id"] = params.get("InferenceId")

    def on_call(self, model: Any, context: dict[str, Any] | None, **_: Any) -> None:
        phase, context = self.phase, context or {}
        if phase is None:
            return
        function = function_of(threading.current_thread().name)
        with self.lock:
            self.counts[(phase, context.get("bench_owner", OTHER), function, operation_of(model))] += 1
            if context.get("bench_inference_id"):
                self.inference_ids[context["bench_inference_id"]] += 1

    def select(self, phase: str, owners: set[str] | None = None) -> Counter[tuple[str, str]]:
        """(function, operation) -> requests of this phase whose owner is one of `owners` (default: any)."""
        selected: Counter[tuple[str, str]] = Counter()
        for (p, who, function, operation), n in self.counts.items():
            if p == phase and (owners is None or who in owners):
                selected[(function, operation)] += n
        return selected

    def requests(self, phase: str, part: int = 1) -> Counter[str]:
        """operation (`part` 1) or function (0) -> requests of this phase (every owner)."""
        selected: Counter[str] = Counter()
        for key, n in self.select(phase).items():
            selected[key[part]] += n
        return selected

    def by_function(self, phase: str) -> Counter[str]:
        return self.requests(phase, 0)


def _jiffies(pid: int | str) -> tuple[int, int]:
    """(parent pid, utime + stime) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_seconds(pid: int) -> float:
    """CPU seconds a process has used so far."""
    return _jiffies(pid)[1] / CLOCK_TICKS


def cpu_snapshot() -> tuple[int, int, int]:
    """(machine busy, machine total, this process and its children) in clock ticks, from /proc."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    me = os.getpid()
    ours = _jiffies(me)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent, ticks = _jiffies(entry.name)
                ours += ticks if parent == me else 0
    return sum(values) - values[3] - values[4], sum(values), ours  # busy: less idle and iowait


def other_load(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """The share of the machine's CPU that processes other than this benchmark's used in between."""
    busy, total, ours = (a - b for a, b in zip(after, before, strict=True))
    return max(busy - ours, 0) / max(total, 1)


def machine(when: str = "") -> str:
    """Where and when a report was measured: `Run <when, or now> UTC on N cores (CPU), <the model's device>`."""
    device = "GPU (CUDA, picked by the model server)" if shutil.which("nvidia-smi") else "CPU model server"
    return (
        f"Run {when or f'{datetime.now(UTC):%Y-%m-%d %H:%M}'} UTC on {os.cpu_count()} cores ({cpu_model()}), {device}"
    )


def table(header: list[str], rows: Iterable[Iterable[Any]], align: str) -> str:
    """A Markdown table; `align` has one letter per column, l(eft) or r(ight); None and short rows' missing cells
    are blanks."""

    def line(cells: Iterable[Any]) -> str:
        padded = ["" if cell is None else str(cell) for cell in [*cells, *[""] * len(header)][: len(header)]]
        return "|" + "|".join(f" {cell} " if cell else " " for cell in padded) + "|"

    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def children(module: str, configs: Iterable[str], argv: list[str], quiet: bool = False) -> dict[str, Any]:
    """Runs `python -m <module> <argv> --child <config> --result-file F` for each configuration, one after the other
    (a process each: the functions' settings and clients are built once per process), and returns their JSON
    results by configuration. `quiet`: a child's output is shown only if it fails; a failure exits with its code."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for config in configs:
            log(f"running: {config} ...")
            result_file = Path(scratch) / f"{config}.json"  # a child that writes nothing fails, not reads another's
            command = [sys.executable, "-m", module, *argv, "--child", config, "--result-file", str(result_file)]
            child = subprocess.run(command, cwd=REPO, capture_output=quiet, text=True, check=False)
            if child.returncode != 0:
                log(f"{config}: the child failed ({child.returncode})" + (f"\n{child.stderr[-3000:]}" if quiet else ""))
                raise SystemExit(child.returncode)
            results[config] = json.loads(result_file.read_text())
    return results
