"""Lambda cold-start import cost of each function handler against a bare baseline, as whole-process runs.

    python -m bench.coldstart [--runs 9] [--top 8]

For every `AWS::Serverless::Function` in template.yaml (found from its CodeUri and Handler), a fresh
`python -c "import <handler module>"` is timed N times, interleaved round-robin with its baseline (consumers:
`import boto3, pydantic`; the API: a bare FastAPI app behind Mangum), in the same directory, sys.path and Lambda-like
environment (the template's Globals and the function's variables), so machine noise hits both alike: the ratio of
medians is the point. The API builds a group of routes on its first request under the group's paths, so it is
also timed with the prediction routes built, as a cold start that serves POST /v1/predictions is. One extra untimed
`-X importtime` run per handler lists the modules that cost the most. Writes bench/results/coldstart.md and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource as rusage
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from bench.harness import log, publish
from local_stack.template import ACCOUNT_ID, TEMPLATE_PATH, Resolver, load_template, resources_of_type

ROOT = TEMPLATE_PATH.parent
RESULT = Path(__file__).resolve().parent / "results" / "coldstart.md"
REGION = "us-east-1"
STACK = "inference-coldstart"
TIMEOUT_S = 180
MARK = "@@coldstart-import-begins@@"
NO_VALUE = "<AWS::NoValue>"

# (baseline, its code), target ratio
CONSUMER = (("boto3 + pydantic", "import boto3, pydantic"), 1.3)
API_CODE = 'import boto3; from fastapi import FastAPI; from mangum import Mangum; Mangum(FastAPI(), lifespan="off")'
API = (("boto3 + bare FastAPI app (Mangum)", API_CODE), 1.2)
# The API builds each route group on its group's first request (inference_api.app.RouteGroups).
API_FIRST_PREDICTION = "; from {module} import _asgi; _asgi.app.state.route_groups.load_for('/v1/predictions')"

# Passed through from this process; everything else in the children's environment is set here, so a stray
# POWERTOOLS_TRACE_DISABLED or AWS_ENDPOINT_URL in the caller's shell cannot change what is measured.
PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT", "PYENV_VERSION")


class _Attributes(dict[str, str]):
    """One resource's placeholder attributes; any GetAtt attribute not listed still resolves."""

    def __init__(self, logical_id: str, values: dict[str, str]) -> None:
        super().__init__(values)
        self.logical_id = logical_id

    def __missing__(self, attribute: str) -> str:
        return f"{self.logical_id}-{attribute}-placeholder"


def placeholders(template: dict[str, Any], region: str = REGION) -> dict[str, dict[str, str]]:
    """Plausible physical values for every resource, keyed generically (Ref, Arn, names, URLs)."""
    physical: dict[str, dict[str, str]] = {"AWS::NoValue": _Attributes("AWS::NoValue", {"Ref": NO_VALUE})}
    for logical_id, resource in template.get("Resources", {}).items():
        resource_type = str(resource.get("Type", ""))
        parts = resource_type.split("::")
        service = parts[1].lower() if len(parts) > 1 else "unknown"
        name = f"{STACK}-{logical_id}".lower()
        arn = f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{name}"
        url = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{name}"
        physical[logical_id] = _Attributes(
            logical_id,
            {
                "Ref": {"AWS::SQS::Queue": url, "AWS::SNS::Topic": arn}.get(resource_type, name),
                **dict.fromkeys(("Arn", "TopicArn"), arn),
                **dict.fromkeys(("Name", "Id", "QueueName", "TopicName", "TableName", "BucketName"), name),
                "QueueUrl": url,
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                "StreamArn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}/stream/placeholder",
                "ApiEndpoint": f"https://{name}.execute-api.{region}.amazonaws.com",
            },
        )
    return physical


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Function(NamedTuple):
    logical_id: str
    code_uri: Path
    handler: str
    module: str
    is_api: bool
    baseline: tuple[str, str]  # (what it is, its code)
    target: float
    env: dict[str, str]
    env_notes: list[str]
    # What the child runs after its imports: the API's first request builds its route group (see below).
    then: str = ""
    case: str = ""

    @property
    def code(self) -> str:
        return f"import {self.module}{self.then}"


def discover(template: dict[str, Any]) -> list[Function]:
    resolver = Resolver(template, parameters={}, region=REGION, stack_name=STACK)
    resolver.physical = placeholders(template)
    globals_ = template.get("Globals", {}).get("Function", {}) or {}
    functions = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = {**globals_, **(resource.get("Properties") or {})}
        code_uri = (ROOT / str(props.get("CodeUri", "."))).resolve()
        handler = str(props.get("Handler", "handler.lambda_handler"))
        is_api = any(str(event.get("Type")) == "HttpApi" for event in (props.get("Events") or {}).values())
        name = f"{STACK}-{logical_id}"
        env = {
            "LAMBDA_TASK_ROOT": str(code_uri),
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": _env_value(resolver.resolve(props.get("MemorySize", 128))),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{props.get('Runtime', 'python3')}",
            "_HANDLER": handler,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "coldstart-bench-fake-secret",
            "AWS_SESSION_TOKEN": "coldstart-bench-fake-token",
            "POWERTOOLS_SERVICE_NAME": logical_id,
            "POWERTOOLS_METRICS_NAMESPACE": "ColdStartBench",
        }
        notes: list[str] = []
        for scope in (globals_, resource.get("Properties") or {}):
            for key, raw in (((scope.get("Environment") or {}).get("Variables")) or {}).items():
                try:
                    value = resolver.resolve(raw)
                except Exception as exc:
                    value = f"{key.lower()}-placeholder"
                    notes.append(f"{key}: unresolved ({type(exc).__name__}: {exc}), placeholder used")
                if value == NO_VALUE:
                    env.pop(key, None)
                else:
                    env[key] = _env_value(value)
        module = handler.rsplit(".", 1)[0]
        function = Function(logical_id, code_uri, handler, module, is_api, *(API if is_api else CONSUMER), env, notes)
        functions.append(function)
        if is_api:  # a cold start also builds the routes its first request needs: a prediction's, timed too
            functions.append(
                function._replace(
                    then=API_FIRST_PREDICTION.format(module=module), case="then POST /v1/predictions's routes"
                )
            )
    return functions


class Outcome(NamedTuple):
    seconds: float
    error: str | None = None
    stderr: str = ""


# RUSAGE_CHILDREN accumulates over every waited-for child: each run's share is the difference.
_cpu_so_far = [0.0]


def run_child(code: str, function: Function, extra: tuple[str, ...] = ()) -> Outcome:
    """Runs one child; `seconds` is its CPU time (user + system), which the machine's other load barely moves,
    unlike wall time on a busy 2-core box."""
    env = {key: os.environ[key] for key in PASS_THROUGH if key in os.environ}
    # Lambda's path: the function's code first, then the layer (/opt/python).
    env |= {**function.env, "PYTHONPATH": os.pathsep.join([str(function.code_uri), str(ROOT / "layers")])}
    started = time.perf_counter()
    try:
        child = subprocess.Popen(  # our own interpreter
            [sys.executable, *extra, "-c", code],
            cwd=function.code_uri,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        return Outcome(time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    try:
        _, stderr = child.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return Outcome(time.perf_counter() - started, f"timed out after {TIMEOUT_S} s")
    usage = rusage.getrusage(rusage.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - _cpu_so_far[0]
    _cpu_so_far[0] = usage.ru_utime + usage.ru_stime
    if child.returncode == 0:
        return Outcome(cpu, None, stderr)
    messages = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("import time:")]
    return Outcome(cpu, f"exit {child.returncode}: {messages[-1] if messages else 'failed with no message'}", stderr)


class ImportEntry(NamedTuple):
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportEntry]:
    """Entries printed after MARK, i.e. imported by the handler import (not by interpreter start-up)."""
    _, found, after = stderr.partition(MARK)
    entries = []
    for line in after.splitlines() if found else []:
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3:
            continue
        try:
            self_us, cumulative_us = int(fields[0]), int(fields[1])
        except ValueError:
            continue  # the header line
        name = fields[2].rstrip()
        stripped = name.lstrip(" ")
        entries.append(ImportEntry(stripped, self_us, cumulative_us, (len(name) - len(stripped)) // 2))
    return entries


@dataclass
class Result:
    function: Function
    baseline_s: list[float] = field(default_factory=list)
    handler_s: list[float] = field(default_factory=list)
    baseline_error: str | None = None
    handler_error: str | None = None
    imports: list[ImportEntry] = field(default_factory=list)
    import_total_us: int | None = None
    added_us: int = 0

    @property
    def ratio(self) -> float | None:
        if self.handler_error or self.baseline_error or not self.handler_s or not self.baseline_s:
            return None
        return statistics.median(self.handler_s) / statistics.median(self.baseline_s)


def profile(result: Result, top: int) -> None:
    """One untimed `-X importtime` run of each; it also warms the page cache and bytecode cache before timing."""
    function = result.function
    mark = f"import sys; print({MARK!r}, file=sys.stderr, flush=True); "
    outcome = run_child(mark + function.code, function, ("-X", "importtime"))
    entries = parse_importtime(outcome.stderr)
    roots = [e.cumulative_us for e in entries if e.depth == 0]
    result.import_total_us = sum(roots) if roots else None
    warm = run_child(mark + function.baseline[1], function, ("-X", "importtime"))
    in_baseline = {e.module for e in parse_importtime(warm.stderr)}
    # What the handler adds over its baseline, by the module's own (self) time.
    added = [e for e in entries if e.module not in in_baseline and e.module != function.module]
    result.imports = sorted(added, key=lambda e: e.self_us, reverse=True)[:top]
    result.added_us = sum(e.self_us for e in added)
    result.handler_error = outcome.error or result.handler_error
    result.baseline_error = warm.error or result.baseline_error


def measure(results: list[Result], runs: int) -> None:
    for i in range(runs):
        for result in results:
            pair = [("baseline", result.function.baseline[1]), ("handler", result.function.code)]
            # Alternate which goes first, so neither always follows the other's cache state.
            for kind, code in reversed(pair) if i % 2 else pair:
                if getattr(result, f"{kind}_error"):
                    continue
                outcome = run_child(code, result.function)
                if outcome.error:
                    setattr(result, f"{kind}_error", outcome.error)
                else:
                    getattr(result, f"{kind}_s").append(outcome.seconds)
        log(f"  run {i + 1}/{runs} done")


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _median_ms(error: str | None, samples: list[float]) -> str:
    if error:
        return f"error: {_cell(error)}"
    return f"{statistics.median(samples) * 1000:.0f}" if samples else "—"


def render(results: list[Result], runs: int) -> str:
    lines = [
        "# Cold-start import cost per Lambda handler",
        "",
        f"`make bench-coldstart` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC). CPU time (user + system) of a "
        'fresh `python -c "import <handler module>"` process against its baseline, median of each, runs '
        "interleaved (the API also with its POST /v1/predictions routes built, as its first prediction builds them). CPU time rather than wall time: on a shared 2-core machine it is the stable measure.",
        "",
        "| function | handler | baseline | baseline median ms | handler median ms | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        f, ratio = r.function, r.ratio
        code_uri = f.code_uri.relative_to(ROOT).as_posix() if f.code_uri.is_relative_to(ROOT) else str(f.code_uri)
        met = "—" if ratio is None else ("yes" if ratio <= f.target else "no")
        lines.append(
            f"| {f.logical_id}{' (API)' if f.is_api else ''}{f', {f.case}' if f.case else ''} | `{f.handler}` "
            f"({code_uri}/) | {f.baseline[0]} "
            f"| {_median_ms(r.baseline_error, r.baseline_s)} | {_median_ms(r.handler_error, r.handler_s)} "
            f"| {'—' if ratio is None else f'{ratio:.2f}x'} | <= {f.target:.2f}x "
            f"| {'no (import failed)' if r.handler_error or r.baseline_error else met} |"
        )
    lines += [
        "",
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, nproc "
        f"{os.cpu_count()}, {runs} runs per command (handler and baseline interleaved round-robin, order "
        "alternating), after one untimed warm-up of each. Absolute times depend on this machine and are not Lambda's; "
        "the ratios are the point. Children run with a Lambda-like environment (LAMBDA_TASK_ROOT, "
        "AWS_LAMBDA_FUNCTION_NAME, region, fake credentials, Powertools names and the template's variables) and the "
        "function's CodeUri then `layers/` on sys.path.",
        "",
        "## What each handler imports beyond its baseline (`-X importtime`, one extra run, by self time)",
    ]
    for r in results:
        total = "no total recorded"
        if r.import_total_us is not None:
            total = (
                f"{r.import_total_us / 1000:.0f} ms {'before it failed' if r.handler_error else 'in all'}, "
                f"{r.added_us / 1000:.0f} ms in modules the baseline does not import"
            )
        lines += ["", f"### {r.function.logical_id}: `{r.function.code}` ({total})", ""]
        if r.handler_error:
            message = _cell(r.handler_error, 400).replace("`", "'")
            lines += [f"Import failed: `{message}`", ""]
        for note in r.function.env_notes:
            lines += [f"Environment: {note}", ""]
        if not r.imports:
            lines.append("No module timings recorded.")
            continue
        lines += ["| module | cumulative ms | self ms |", "|---|---:|---:|"]
        lines += [f"| `{e.module}` | {e.cumulative_us / 1000:.1f} | {e.self_us / 1000:.1f} |" for e in r.imports]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command (median reported)")
    parser.add_argument("--top", type=int, default=8, help="modules listed per handler from -X importtime")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results = [Result(function) for function in discover(load_template())]
    if not results:
        log("no AWS::Serverless::Function in template.yaml")
        return 1
    for result in results:
        log(f"profiling {result.function.logical_id} ({result.function.module})")
        profile(result, args.top)
    log(f"timing {args.runs} interleaved runs")
    measure(results, args.runs)
    publish(render(results, args.runs), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
