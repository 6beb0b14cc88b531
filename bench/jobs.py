"""Bulk-job benchmark on the local stack: a large job end to end vs the model server alone, AWS requests per line,
interactive latency while the job runs, and a second tenant's small job behind it.

    python -m bench.jobs [--lines 20000] [--small-lines 100] [--samples 40] [--concurrency 5]
                         [--chunk-size N] [--in-flight N] [--texts short|mixed]

Job lines are short texts by default (bench/corpus.py's texts of at most 12 words), which keeps the run under 10
minutes on 2 CPU cores; `--texts mixed` takes the corpus's mixed lengths (several times slower per text there).

One local stack (moto, the real model server, the local SageMaker endpoint, the event pumps, the API), one run:

1. the model server alone: the job's texts POSTed straight to its /invocations, chunk-size lines per request
   (the chunk objects' own format), in-flight requests at once; then the first few of them again, marked as the
   endpoint marks job chunks (`priority=bulk`, which the container runs in slices);
2. interactive predictions while idle (POST /v1/predictions with `Prefer: wait=20`, a few clients at once);
3. tenant B's small job alone;
4. tenant A's large job (POST /v1/jobs, PUT of the JSONL file to the presigned URL); once its chunks are at the
   endpoint, as many interactive predictions again and, at the same time, tenant B's small job again; then until
   A's job is completed.

Job times run from the PUT of the file to the job record's `completed_at`; the harness reads job records straight
from DynamoDB with its own client (uncounted), and reads each job once through GET /v1/jobs/{id} at the end.
AWS requests are counted exactly with a botocore hook on the clients the product's code uses (API and functions),
as bench/pipeline.py does, and each is attributed by what it names: a job id, the jobs' shared records (the chunk
gate, the active-jobs index), or neither (interactive predictions, API keys, the predictions' sweep).
--chunk-size/--in-flight override the template parameters JobChunkMaxInputs/JobMaxInFlightChunks (by default the
template's own values are used); the report states the values in effect. Writes bench/results/jobs.md and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import corpus
from bench.harness import (
    REPO,
    TERMINAL,
    api_client,
    api_key,
    count_requests,
    cpu_model,
    describe,
    local_stack,
    log,
    met,
    percentile,
    publish,
)
from model_server.config import ServerConfig

JOB_TERMINAL = {"completed", "failed", "cancelled", "expired", "validated"}
JOB_ID = re.compile(r"job_[0-9a-f]{32}")
SHARED_PREFIXES = ("GATE#", "JOBS")  # the chunk gate; the jobs' partitions of the open index
SHARED = "shared"
OTHER = "other"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BULK_SAMPLE_CHUNKS = 5  # the first chunks of the texts, sent again as the endpoint sends job chunks
RATIO_TARGET = 0.8
REQUESTS_TARGET = 0.05
LATENCY_TARGET = 1.5


# ---------------------------------------------------------------- texts


def job_texts(count: int, kind: str) -> list[str]:
    """`mixed`: bench/corpus.py as it is (mostly short, some paragraphs, a few past 256 tokens); `short`: only its
    texts of at most 12 words."""
    if kind == "mixed":
        return corpus(count)
    texts: list[str] = []
    seed = 13
    while len(texts) < count:
        texts += [t for t in corpus(4 * count, seed) if len(t.split()) <= 12]
        seed += 1
    return texts[:count]


def jsonl(texts: list[str], prefix: str) -> bytes:
    return b"".join(
        json.dumps({"custom_id": f"{prefix}-{i}", "inputs": text}).encode() + b"\n" for i, text in enumerate(texts)
    )


# ---------------------------------------------------------------- counting


@dataclass
class Meter:
    """Counts every request the product's clients send, by phase, owner, function and operation."""

    phase: str | None = None
    counts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    inference_ids: Counter[str] = field(default_factory=Counter)  # InvokeEndpointAsync calls by InferenceId
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, events: Any) -> None:
        events.register("before-parameter-build.*.*", self.on_params)
        events.register("before-call.*.*", self.on_call)

    def on_params(self, params: dict[str, Any], context: dict[str, Any] | None, **_: Any) -> None:
        # A presigned URL emits this event too, but never before-call: only requests sent are counted below.
        if self.phase is not None and context is not None:
            context["bench_owner"] = owner(params)
            context["bench_inference_id"] = params.get("InferenceId")

    def on_call(self, model: Any, context: dict[str, Any] | None, **_: Any) -> None:
        phase = self.phase
        if phase is None:
            return
        who = (context or {}).get("bench_owner", OTHER)
        operation = f"{model.service_model.service_name}.{model.name}"
        inference_id = (context or {}).get("bench_inference_id")
        with self.lock:
            self.counts[(phase, who, function_of(threading.current_thread().name), operation)] += 1
            if inference_id:
                self.inference_ids[inference_id] += 1

    def select(self, phase: str, owners: set[str]) -> Counter[tuple[str, str]]:
        """(function, operation) -> requests of this phase whose owner is one of `owners`."""
        selected: Counter[tuple[str, str]] = Counter()
        for (p, who, function, operation), n in self.counts.items():
            if p == phase and who in owners:
                selected[(function, operation)] += n
        return selected


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def owner(params: dict[str, Any]) -> str:
    """The job a request is for (its id appears in a key, an object key, an inference id or a command), `shared`
    for the jobs' common records (or several jobs at once), else `other`."""
    strings = _strings(params)
    ids = {match for s in strings for match in JOB_ID.findall(s)}
    if len(ids) == 1:
        return str(ids.pop())
    if ids or any(s.startswith(SHARED_PREFIXES) for s in strings):
        return SHARED
    return OTHER


def function_of(thread: str) -> str:
    """The event pumps' threads are named `<Function>-<n>`, the scheduler's `<Function>-schedule`; the rest is the
    API (uvicorn and its worker threads)."""
    name = thread.split("-", 1)[0]
    return name.removesuffix("Function") if name.endswith("Function") else "API"


# ---------------------------------------------------------------- the workloads


@dataclass
class Tenant:
    name: str
    api: httpx.Client


def gate_in_flight(ddb: Any, table: str) -> int:
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "GATE#bulk-chunks"}}, ConsistentRead=True).get("Item", {})
    return int(item.get("in_flight", {}).get("N", "0"))


def job_record(ddb: Any, table: str, job_id: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=table, Key={"pk": {"S": f"JOB#{job_id}"}}, ConsistentRead=True).get("Item", {})
    return {k: next(iter(v.values())) for k, v in item.items()}


@dataclass
class JobRun:
    job_id: str
    lines: int
    uploaded: datetime
    record: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # milestone -> seconds after the upload
    api: dict[str, Any] = field(default_factory=dict)
    running: list[int] = field(default_factory=list)  # its chunks at the endpoint, at each poll while in progress
    gate: list[int] = field(default_factory=list)  # the chunk gate's in_flight (all jobs), at each poll

    @property
    def seconds(self) -> float:
        return (datetime.fromisoformat(self.record["completed_at"]) - self.uploaded).total_seconds()


def submit_job(tenant: Tenant, texts: list[str], prefix: str) -> JobRun:
    created = tenant.api.post("/v1/jobs", json={"metadata": {"bench": prefix}})
    created.raise_for_status()
    job = created.json()
    upload = job["upload"]
    body = jsonl(texts, prefix)
    uploaded = datetime.now(UTC)
    put = httpx.put(upload["url"], content=body, headers=upload["headers"], timeout=120)
    put.raise_for_status()
    return JobRun(job["id"], len(texts), uploaded)


def watch(ddb: Any, table: str, run: JobRun, until: str = "terminal", timeout: float = 1200) -> JobRun:
    """Poll the record (uncounted) until `until`: "running" (a chunk at the endpoint) or "terminal"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = job_record(ddb, table, run.job_id)
        elapsed = (datetime.now(UTC) - run.uploaded).total_seconds()
        if "chunk_count" in record:
            run.seen.setdefault("planned", elapsed)
        if record.get("chunks_running"):
            run.seen.setdefault("first chunk at the endpoint", elapsed)
        if record.get("status") == "finalizing":
            run.seen.setdefault("assembling", elapsed)
        run.record = record
        if record.get("status") == "in_progress" and "first chunk at the endpoint" in run.seen:
            run.running.append(len(record.get("chunks_running") or {}))
            run.gate.append(gate_in_flight(ddb, table))
        if record.get("status") in JOB_TERMINAL or (until == "running" and record.get("chunks_running")):
            return run
        time.sleep(0.2)
    raise TimeoutError(f"job {run.job_id} did not get {until} in {timeout:.0f} s: {run.record.get('status')}")


def finish_job(tenant: Tenant, ddb: Any, table: str, run: JobRun, check_output: bool) -> JobRun:
    watch(ddb, table, run)
    response = tenant.api.get(f"/v1/jobs/{run.job_id}")
    response.raise_for_status()
    run.api = response.json()
    if run.api["status"] != "completed":
        raise RuntimeError(f"job {run.job_id} ended {run.api['status']}: {run.api.get('error')}")
    if check_output:  # the result file: one line per input line, each with its embedding
        lines = [json.loads(line) for line in httpx.get(run.api["output_url"], timeout=60).content.splitlines()]
        good = sum(len(line["output"]["embeddings"][0]) == 384 for line in lines)
        run.api["output_lines_checked"] = good
    return run


@dataclass
class Sample:
    seconds: float  # the client's round trip
    ended: datetime
    queue_ms: float  # the record's created -> running (API and dispatcher)
    inference_ms: float  # running -> succeeded (endpoint queue, model, completion)
    waited_out: bool  # not finished within Prefer: wait=20 (then polled)


def predict(api: httpx.Client, text: str) -> Sample:
    started = time.perf_counter()
    response = api.post("/v1/predictions", json={"inputs": text}, headers={"Prefer": "wait=20"})
    response.raise_for_status()
    body = response.json()
    waited_out = body["status"] not in TERMINAL
    while body["status"] not in TERMINAL:  # 202: not finished within the wait
        time.sleep(0.1)
        body = api.get(f"/v1/predictions/{body['id']}").json()
    if body["status"] != "succeeded":
        raise RuntimeError(f"prediction {body['id']} ended {body['status']}: {body.get('error')}")
    seconds = time.perf_counter() - started
    metrics = body.get("metrics") or {}
    return Sample(
        seconds, datetime.now(UTC), metrics.get("queue_ms") or 0, metrics.get("inference_ms") or 0, waited_out
    )


def interactive(api: httpx.Client, texts: list[str], concurrency: int) -> dict[str, Any]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda t: predict(api, t), texts))
    latencies = [sample.seconds for sample in samples]
    return {
        "samples": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "queue_p50": percentile([sample.queue_ms / 1000 for sample in samples], 50),
        "inference_p50": percentile([sample.inference_ms / 1000 for sample in samples], 50),
        "record_p50": percentile([(sample.queue_ms + sample.inference_ms) / 1000 for sample in samples], 50),
        "waited_out": sum(sample.waited_out for sample in samples),
        "seconds": time.monotonic() - started,
        "ends": [sample.ended for sample in samples],
    }


def time_chunk_finishing(durations: list[tuple[str, float]]) -> None:
    """Times every chunk notification (read a chunk's output, write its part files, move the counters, settle):
    the completion function's work per chunk. A wrapper in the module; the product's code is unchanged."""
    from inference_core.logic import job_driver

    on_notification = job_driver.on_notification

    def timed(notification: Any, *rest: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        job_id = notification.inference_id.rpartition("-")[0]
        try:
            return on_notification(notification, *rest, **kwargs)
        finally:
            durations.append((job_id, time.perf_counter() - started))

    job_driver.on_notification = timed


def model_server_rate(url: str, texts: list[str], chunk: int, in_flight: int, bulk: bool = False) -> dict[str, Any]:
    """The texts as the endpoint gets them (chunk objects of BatchLine JSON lines), straight to /invocations;
    `bulk`: with the CustomAttributes the endpoint passes on for a job chunk (SageMaker's header for them)."""
    bodies = [
        "".join(
            json.dumps({"id": f"{start + i + 1}:line-{start + i}", "inputs": [t], "parameters": {}}) + "\n"
            for i, t in enumerate(texts[start : start + chunk])
        ).encode()
        for start in range(0, len(texts), chunk)
    ]
    headers = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    if bulk:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = "priority=bulk"
    with httpx.Client(base_url=url, timeout=900) as http:

        def post(body: bytes) -> int:
            response = http.post("/invocations", content=body, headers=headers)
            response.raise_for_status()
            return sum(b'"embeddings"' in line for line in response.content.splitlines())

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            embedded = sum(pool.map(post, bodies))
        seconds = time.perf_counter() - started
    if embedded != len(texts):
        raise RuntimeError(f"the model server embedded {embedded} of {len(texts)} texts")
    return {"items": embedded, "seconds": seconds, "rate": embedded / seconds, "requests": len(bodies)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = job_texts(args.lines, args.texts)
    small_texts = corpus(args.small_lines, seed=29)
    probe = [t for t in corpus(4 * args.samples, seed=31) if len(t.split()) <= 12]
    idle_texts, busy_texts = probe[: args.samples], probe[args.samples : 2 * args.samples]
    parameters = {
        name: str(value)
        for name, value in (("JobChunkMaxInputs", args.chunk_size), ("JobMaxInFlightChunks", args.in_flight))
        if value is not None
    }
    # The job pipeline itself, as #10 set its targets; what the result cache adds or saves for jobs is measured by
    # bench/cache.py (a first run writes every vector back, a re-run invokes nothing).
    parameters["ResultCacheScope"] = args.result_cache
    results: dict[str, Any] = {"parameters": parameters, "other_load": {}}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    with local_stack(parameters=parameters, pollers_per_function=5) as stack:
        # Imported once the stack has set the functions' environment, which the settings read.
        from inference_core.logic.auth import create_api_key

        meter = count_requests(Meter())
        finishing: list[tuple[str, float]] = []
        time_chunk_finishing(finishing)
        ddb = stack.client("dynamodb")
        table = stack.stack.table_name if stack.stack else ""
        key_a = api_key(stack)
        key_b, _ = create_api_key("bench-tenant-b", "bench.jobs")
        stats_url = stack.urls["sagemaker"] + "/_local/stats"
        with api_client(stack, key_a) as a, api_client(stack, key_b) as b:
            tenant_a, tenant_b = Tenant("local-dev", a), Tenant("bench-tenant-b", b)
            predict(a, "warm-up")
            # The values in effect: the template's defaults, or the overrides.
            env = stack.stack.env if stack.stack else {}
            chunk, cap = int(env["JOB_CHUNK_MAX_INPUTS"]), int(env["JOB_MAX_IN_FLIGHT_CHUNKS"])
            # What the gate opens on the local endpoint's one instance (older trees: the cap alone).
            per_instance = env.get("MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE")
            in_flight = min(cap, max(1, int(per_instance) - 1)) if per_instance else cap
            results["chunk_size"], results["in_flight"] = chunk, in_flight
            results["bulk_slice"] = getattr(ServerConfig.from_env(), "bulk_slice_texts", "(not set)")
            model_server_rate(stack.urls["model"], texts[:chunk], chunk, 1)  # warm-up

            log(f"model server alone ({args.lines} texts) ...")
            model_pid = stack._model.pid if stack._model else os.getpid()
            cpu, ticks = cpu_snapshot(), _process_jiffies(model_pid)
            results["model"] = model_server_rate(stack.urls["model"], texts, chunk, in_flight)
            results["model"]["cpu_per_text"] = (_process_jiffies(model_pid) - ticks) / CLOCK_TICKS / len(texts)
            log(f"  {results['model']['rate']:.1f} items/s; its first chunks again as job chunks (priority=bulk) ...")
            some = texts[: chunk * BULK_SAMPLE_CHUNKS]
            results["model_bulk"] = model_server_rate(stack.urls["model"], some, chunk, in_flight, bulk=True)
            results["other_load"]["model server alone"] = other_load(cpu, cpu := cpu_snapshot())
            log(f"  {results['model_bulk']['rate']:.1f} items/s")

            log("interactive, idle ...")
            meter.phase = "idle interactive"
            results["idle"] = interactive(a, idle_texts, args.concurrency)

            log("small job alone ...")
            meter.phase = "small alone"
            solo = finish_job(tenant_b, ddb, table, submit_job(tenant_b, small_texts, "b-solo"), True)
            time.sleep(1)
            results["other_load"]["idle interactive and small job alone"] = other_load(cpu, cpu := cpu_snapshot())

            log(f"large job ({args.lines} lines) ...")
            meter.phase = "large job"
            invocations_before = httpx.get(stats_url).json()["invocations"]
            results["gate_before"] = gate_in_flight(ddb, table)
            ticks = _process_jiffies(model_pid)
            big = submit_job(tenant_a, texts, "a")
            watch(ddb, table, big, until="running")
            log("  interactive predictions and tenant B's small job during it ...")
            before = job_record(ddb, table, big.job_id)
            with ThreadPoolExecutor(max_workers=1) as background:
                behind_future = background.submit(
                    lambda: finish_job(tenant_b, ddb, table, submit_job(tenant_b, small_texts, "b-behind"), True)
                )
                results["busy"] = interactive(a, busy_texts, args.concurrency)
                behind = behind_future.result()
            finish_job(tenant_a, ddb, table, big, False)
            time.sleep(1)  # the last completion calls land before we stop counting
            meter.phase = None
            invocations = httpx.get(stats_url).json()["invocations"] - invocations_before
            # Every text the model embedded in that window: the large job's, the small job's, the interactive ones.
            embedded = args.lines + args.small_lines + args.samples
            results["model_cpu_per_text_in_job"] = (_process_jiffies(model_pid) - ticks) / CLOCK_TICKS / embedded
            results["other_load"]["large job"] = other_load(cpu, cpu_snapshot())
    results["large"] = _job_summary(big)
    results["small_solo"] = _job_summary(solo)
    results["small_behind"] = _job_summary(behind)
    results["big_chunks_left_when_small_submitted"] = int(before.get("chunk_count", 0)) - len(
        before.get("done_chunks") or []
    )
    big_end = datetime.fromisoformat(big.record["completed_at"])
    results["big_done_when_small_finished"] = datetime.fromisoformat(behind.record["completed_at"]) >= big_end
    results["busy"]["during"] = sum(end < big_end for end in results["busy"].pop("ends"))
    results["idle"].pop("ends")
    results["small_solo_requests"] = meter.select("small alone", {solo.job_id, SHARED})
    results["large_requests"] = meter.select("large job", {big.job_id, SHARED})
    results["large_requests_small"] = meter.select("large job", {behind.job_id})
    results["large_requests_other"] = meter.select("large job", {OTHER})
    results["endpoint_invocations_all"] = invocations
    results["chunks_invoked_twice"] = sorted(
        i for i, n in meter.inference_ids.items() if n > 1 and i.startswith(f"{big.job_id}-")
    )
    results["chunk_finishing"] = [seconds for job_id, seconds in finishing if job_id == big.job_id]
    return results


def _job_summary(run: JobRun) -> dict[str, Any]:
    counts = run.api.get("request_counts", {})
    return {
        "id": run.job_id,
        "lines": run.lines,
        "seconds": run.seconds,
        "rate": run.lines / run.seconds,
        "completed": counts.get("completed"),
        "failed": counts.get("failed"),
        "chunks": int(run.record.get("chunk_count", 0)),
        "milestones": {**run.seen, "completed": run.seconds},
        "output_lines_checked": run.api.get("output_lines_checked"),
        "running_max": max(run.running, default=0),
        "running_mean": sum(run.running) / max(len(run.running), 1),
        "gate_min": min(run.gate, default=0),
        "gate_max": max(run.gate, default=0),
    }


# ---------------------------------------------------------------- other load on the machine


def _process_jiffies(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_snapshot() -> tuple[int, int, int]:
    """(machine busy, machine total, this process and its children) in clock ticks, from /proc."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(values)
    busy = total - values[3] - values[4]  # less idle and iowait
    me = os.getpid()
    ours = _process_jiffies(me)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == me:
                    ours += int(fields[11]) + int(fields[12])
    return busy, total, ours


def other_load(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """The share of the machine's CPU that processes other than this benchmark's used in between."""
    busy, total, ours = (a - b for a, b in zip(after, before, strict=True))
    return max(busy - ours, 0) / max(total, 1)


# ---------------------------------------------------------------- the report


def render(results: dict[str, Any], args: argparse.Namespace, wall: float, revision: str) -> str:
    model, large, idle, busy = results["model"], results["large"], results["idle"], results["busy"]
    bulk = results["model_bulk"]
    solo, behind = results["small_solo"], results["small_behind"]
    lines_total = large["lines"]
    requests: Counter[tuple[str, str]] = results["large_requests"]
    by_operation: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for (function, operation), n in requests.items():
        by_operation[operation] += n
        by_function[function] += n
    total = sum(requests.values())
    invokes = by_operation.get("sagemaker-runtime.InvokeEndpointAsync", 0)
    chunk, in_flight = results["chunk_size"], results["in_flight"]
    invokes_target = 1000 / chunk + 1
    ratio = large["rate"] / model["rate"]
    latency_ratio = busy["p50"] / idle["p50"]
    device = "GPU (CUDA, picked by the model server)" if shutil.which("nvidia-smi") else "CPU model server"
    chunk_seconds = chunk / model["rate"]
    finishing = results["chunk_finishing"] or [0.0]
    finish_p50, finish_max = percentile(finishing, 50), max(finishing)
    texts = (
        "bench/corpus.py's mixed-length texts (mostly short, some paragraphs, a few cut at 256 tokens)"
        if args.texts == "mixed"
        else "**short texts only** (bench/corpus.py texts of 3 to 12 words), so that the run stays under 10 minutes "
        "on this machine (`--texts mixed` uses the corpus's mixed lengths, several times slower per text on 2 CPU "
        "cores)"
    )
    out = [
        "# Bulk jobs on the local stack",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), {device}; "
        f"`python -m bench.jobs` took {wall / 60:.1f} min; {revision}. Template parameters: JobChunkMaxInputs={chunk}, "
        f"JobMaxInFlightChunks/the gate on one instance={in_flight} ("
        + (
            "overridden: " + ", ".join(f"{k}={v}" for k, v in results["parameters"].items())
            if results["parameters"]
            else "the template's defaults"
        )
        + "); the other parameters are the template's, the event pumps run 5 pollers per function, the sweeper "
        f"every 10 s. Model container: BULK_SLICE_TEXTS={results['bulk_slice']}"
        + (" (0: the container picks the slice size by device)." if results["bulk_slice"] == 0 else "."),
        "",
        f"Job lines: one text each, {texts}. The model server, the moto server, the API, the event pumps and the "
        "local endpoint share this machine's cores, so the pipeline's own work competes with the model here; "
        "on AWS it runs elsewhere.",
        "",
        f"## 1. Throughput: a {lines_total:,}-line job vs the model server alone",
        "",
        "| measurement | value | target | |",
        "|---|---:|---:|---|",
        f"| model server alone: same texts, {model['requests']} POSTs of {chunk} lines to /invocations, "
        f"{in_flight} at a time | {model['rate']:.1f} items/s ({model['seconds']:.1f} s) | | |",
        f"| model server alone, the first {bulk['requests']} of those requests again, marked as the endpoint marks "
        "job chunks (`priority=bulk`: the container runs them in slices) | "
        f"{bulk['rate']:.1f} items/s "
        f"({bulk['seconds']:.1f} s) | | |",
        f"| job end to end: PUT of the file -> status completed | {large['rate']:.1f} items/s "
        f"({large['seconds']:.1f} s) | | |",
        f"| **ratio job / model server** | **{ratio:.2f}** | >= {RATIO_TARGET} | {met(ratio >= RATIO_TARGET)} |",
        f"| ratio job / model server running bulk chunks (the pipeline's own overhead) | "
        f"{large['rate'] / bulk['rate']:.2f} | | |",
        "",
        f"Job {large['completed']:,} completed, {large['failed']} failed, {large['chunks']} chunks. Seconds after the "
        "PUT: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in large["milestones"].items())
        + f". One chunk is about {chunk_seconds:.1f} s of model time here; finishing one in the completion function "
        f"(read its output, write its part files, move the counters, launch the next) took p50 {finish_p50:.2f} s, "
        f"max {finish_max:.2f} s, on the same cores. Its chunks at the endpoint at once (polled every 0.2 s while "
        f"in progress): mean {large['running_mean']:.2f}, max {large['running_max']}; the chunk gate's in_flight "
        f"was {results['gate_before']} before the job and between {large['gate_min']} and {large['gate_max']} during "
        f"it. The model server spent {model['cpu_per_text'] * 1000:.1f} ms of CPU per text alone and "
        f"{results['model_cpu_per_text_in_job'] * 1000:.1f} ms during the job (its "
        f"{os.cpu_count()} torch threads share the cores with the local stack's own work).",
        "",
        "## 2. AWS requests for the large job",
        "",
        "| measurement | value | target | |",
        "|---|---:|---:|---|",
        f"| AWS requests per line (all operations) | {total / lines_total:.4f} ({total:,} requests) | "
        f"<= {REQUESTS_TARGET} | {met(total / lines_total <= REQUESTS_TARGET)} |",
        f"| endpoint invocations per 1,000 lines | {1000 * invokes / lines_total:.2f} | "
        f"<= {invokes_target:.2f} (1000/{chunk} + 1) | {met(1000 * invokes / lines_total <= invokes_target)} |",
        "",
        "| service.operation | requests | per line |",
        "|---|---:|---:|",
    ]
    for operation, n in sorted(by_operation.items()):
        out.append(f"| {operation} | {n:,} | {n / lines_total:.5f} |")
    out += [
        "",
        "By function: "
        + ", ".join(f"{function} {n:,}" for function, n in sorted(by_function.items(), key=lambda kv: -kv[1]))
        + ".",
        "",
        f"The endpoint took {results['endpoint_invocations_all']} invocations in that window: the large job's chunks, "
        "the small job's and the interactive predictions' batches. Chunks of the large job invoked more than once: "
        + (", ".join(f"**{i}**" for i in results["chunks_invoked_twice"]) or "none")
        + ".",
        "",
        "Counted: every request the product's clients sent (API and functions) that names the large job, plus the "
        "jobs' shared records (the chunk gate, the jobs' partitions of the open index, a read of several jobs at once): these "
        f"serve the small job too while it runs, so the figure is an upper bound. Requests of the small job "
        f"({sum(results['large_requests_small'].values())}) and of the interactive predictions, API keys and the "
        f"predictions' sweep ({sum(results['large_requests_other'].values())}) in the same window are left out. "
        "Not counted (not the product's clients): the user's PUT of the file, S3's event to SQS, the event source "
        "mappings' ReceiveMessage/DeleteMessageBatch, the endpoint's own S3 reads and writes and SNS publishes, "
        "and the harness's status reads (it polls DynamoDB directly; each GET /v1/jobs/{id} is one GetItem). "
        f"The local sweeper runs every 10 s instead of every 5 minutes, so its share ({by_function.get('Sweeper', 0)} "
        f"requests) is about 30x what it would be on AWS; without it: {(total - by_function.get('Sweeper', 0)) / lines_total:.4f} "
        "per line. "
        f"The small job alone: {sum(results['small_solo_requests'].values()) / solo['lines']:.2f} requests per line "
        f"({solo['lines']} lines, one chunk: fixed costs dominate).",
        "",
        "## 3. Interactive predictions: idle vs while the large job runs",
        "",
        f"POST /v1/predictions (one short text) with `Prefer: wait=20`, {idle['samples']} samples, "
        f"{args.concurrency} clients at once; latency is the client's round trip. During the job: "
        f"{busy['during']} of {busy['samples']} samples ended before the large job completed.",
        "",
        "| measurement | idle | during the job | target | |",
        "|---|---:|---:|---:|---|",
        f"| p50 s | {idle['p50']:.2f} | {busy['p50']:.2f} | | |",
        f"| p99 s | {idle['p99']:.2f} | {busy['p99']:.2f} | | |",
        f"| p50 queue_ms (API and dispatcher), s | {idle['queue_p50']:.2f} | {busy['queue_p50']:.2f} | | |",
        f"| p50 inference_ms (endpoint queue, model, completion), s | {idle['inference_p50']:.2f} | "
        f"{busy['inference_p50']:.2f} | | |",
        f"| p50 queue_ms + inference_ms (the record's created -> succeeded), s | {idle['record_p50']:.2f} | "
        f"{busy['record_p50']:.2f} | | |",
        f"| p50 record time during / idle | | {busy['record_p50'] / idle['record_p50']:.2f}x | | |",
        f"| not finished within `Prefer: wait=20` (then polled) | {idle['waited_out']} | {busy['waited_out']} | | |",
        f"| **p50 during / p50 idle** | | **{latency_ratio:.2f}x** | <= {LATENCY_TARGET}x | "
        f"{met(latency_ratio <= LATENCY_TARGET)} |",
        "",
        f"The extra p50 latency during the job, {busy['p50'] - idle['p50']:.1f} s, is "
        f"{(busy['p50'] - idle['p50']) / chunk_seconds:.1f} chunks' worth of model time ({chunk_seconds:.1f} s each; "
        f"{in_flight} chunks may be at the endpoint at once, over all jobs).",
        "",
        "## 4. A second tenant's small job behind the large one",
        "",
        "| measurement | value | target | |",
        "|---|---:|---:|---|",
        f"| {solo['lines']}-line job alone (idle stack), PUT -> completed | {solo['seconds']:.1f} s | | |",
        f"| the same job submitted while the large job runs | {behind['seconds']:.1f} s | | |",
        f"| **behind / alone** | **{behind['seconds'] / solo['seconds']:.2f}x** | none set | — |",
        "",
        "Tenant B's job was submitted, together with the interactive predictions of section 3, once the large "
        f"job's first chunk was at the endpoint; the large job then had {results['big_chunks_left_when_small_submitted']} "
        f"of {large['chunks']} chunks not finished, and "
        + (
            "**had already finished when the small one did** (the comparison does not hold)."
            if results["big_done_when_small_finished"]
            else "was still running when the small job completed."
        )
        + f" Its chunk reached the endpoint {behind['milestones'].get('first chunk at the endpoint', float('nan')):.1f} s "
        f"after its PUT (alone: {solo['milestones'].get('first chunk at the endpoint', float('nan')):.1f} s), i.e. "
        "after waiting for a place under the chunk gate. For scale: one chunk of the large job is about "
        f"{chunk_seconds:.1f} s of model time here. Both small "
        f"jobs' result files were read back: {solo['output_lines_checked']} and {behind['output_lines_checked']} "
        "lines with a 384-dimension embedding.",
        "",
        "## Other load on the machine",
        "",
        "Share of the machine's CPU used by processes other than this benchmark's (from /proc; anything above a few "
        "percent makes the times above slower and noisier): "
        + ", ".join(f"{phase} {share:.0%}" for phase, share in results["other_load"].items())
        + ".",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000, help="lines of the large job")
    parser.add_argument("--small-lines", type=int, default=100, help="lines of the second tenant's job")
    parser.add_argument("--samples", type=int, default=40, help="interactive predictions, idle and during")
    parser.add_argument("--concurrency", type=int, default=5, help="interactive clients at once")
    parser.add_argument("--chunk-size", type=int, help="override template parameter JobChunkMaxInputs")
    parser.add_argument("--in-flight", type=int, help="override template parameter JobMaxInFlightChunks")
    parser.add_argument(
        "--result-cache", choices=["off", "tenant"], default="off", help="template parameter ResultCacheScope (off)"
    )
    parser.add_argument(
        "--texts",
        choices=["mixed", "short"],
        default="short",
        help="short (default: keeps the run under 10 minutes on 2 cores) or bench/corpus.py's mixed lengths",
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results/jobs.md"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    revision = describe("new", REPO, "HEAD")
    with contextlib.redirect_stdout(sys.stderr):  # the functions' cold-start metric lines (EMF) are not the report
        results = run(args)
    report = render(results, args, time.monotonic() - started, revision)
    publish(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
