"""Bulk-job benchmark on the local stack: a large job end to end vs the model server alone, AWS requests per line,
interactive latency while the job runs, and a second tenant's small job behind it.

    python -m bench.jobs [--lines 20000] [--small-lines 100] [--samples 40] [--concurrency 5]
                         [--chunk-size N] [--in-flight N] [--texts short|mixed]

One local stack, one run: (1) the job's texts POSTed straight to the model server's /invocations, chunk-size lines
per request, in-flight at once, then its first chunks again marked as job chunks (`priority=bulk`); (2) interactive
predictions while idle (`Prefer: wait=20`); (3) tenant B's small job alone; (4) tenant A's large job, and once its
chunks are at the endpoint, the interactive predictions and B's small job again, until A's job completes.

Job lines are short texts by default (corpus texts of at most 12 words: under 10 minutes on 2 cores; `--texts mixed`
for the corpus's mixed lengths). Job times run from the PUT of the file to the record's `completed_at`; records are
read straight from DynamoDB (uncounted). AWS requests are counted on the product's clients and attributed by what
they name: a job id, the jobs' shared records (the chunk gate, the active-jobs index), or neither. --chunk-size and
--in-flight override JobChunkMaxInputs/JobMaxInFlightChunks. Writes bench/results/jobs.md and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import harness
from bench.corpus import corpus
from bench.harness import OTHER, Meter, cpu_snapshot, log, met, other_load, percentile, strings, table
from model_server.config import ServerConfig

JOB_TERMINAL = {"completed", "failed", "cancelled", "expired", "validated"}
JOB_ID = re.compile(r"job_[0-9a-f]{32}")
SHARED_PREFIXES = ("GATE#", "JOBS")  # the chunk gate; the jobs' partitions of the open index
SHARED = "shared"
BULK_SAMPLE_CHUNKS = 5  # the first chunks of the texts, sent again as the endpoint sends job chunks
RATIO_TARGET = 0.8
REQUESTS_TARGET = 0.05
LATENCY_TARGET = 1.5


def job_texts(count: int, kind: str) -> list[str]:
    """`mixed`: bench/corpus.py as it is; `short`: only its texts of at most 12 words."""
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


def owner(params: dict[str, Any]) -> str:
    """The job a request is for (its id in a key, an object key, an inference id or a command), SHARED for the
    jobs' common records (or several jobs at once), else OTHER."""
    found = strings(params)
    ids = {match for s in found for match in JOB_ID.findall(s)}
    if len(ids) == 1:
        return str(ids.pop())
    return SHARED if ids or any(s.startswith(SHARED_PREFIXES) for s in found) else OTHER


def gate_in_flight(ddb: Any, table_name: str) -> int:
    key = {"pk": {"S": "GATE#bulk-chunks"}}
    item = ddb.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item", {})
    return int(item.get("in_flight", {}).get("N", "0"))


def job_record(ddb: Any, table_name: str, job_id: str) -> dict[str, Any]:
    key = {"pk": {"S": f"JOB#{job_id}"}}
    item = ddb.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item", {})
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

    def summary(self) -> dict[str, Any]:
        counts = self.api.get("request_counts", {})
        return {
            "id": self.job_id,
            "lines": self.lines,
            "seconds": self.seconds,
            "rate": self.lines / self.seconds,
            "completed": counts.get("completed"),
            "failed": counts.get("failed"),
            "chunks": int(self.record.get("chunk_count", 0)),
            "milestones": {**self.seen, "completed": self.seconds},
            "output_lines_checked": self.api.get("output_lines_checked"),
            "running_max": max(self.running, default=0),
            "running_mean": sum(self.running) / max(len(self.running), 1),
            "gate_min": min(self.gate, default=0),
            "gate_max": max(self.gate, default=0),
        }


def submit_job(api: httpx.Client, texts: list[str], prefix: str) -> JobRun:
    created = api.post("/v1/jobs", json={"metadata": {"bench": prefix}})
    created.raise_for_status()
    job = created.json()
    body = jsonl(texts, prefix)
    uploaded = datetime.now(UTC)
    httpx.put(job["upload"]["url"], content=body, headers=job["upload"]["headers"], timeout=120).raise_for_status()
    return JobRun(job["id"], len(texts), uploaded)


def watch(ddb: Any, table_name: str, run: JobRun, until: str = "terminal", timeout: float = 1200) -> JobRun:
    """Poll the record (uncounted) until `until`: "running" (a chunk at the endpoint) or "terminal"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = run.record = job_record(ddb, table_name, run.job_id)
        elapsed = (datetime.now(UTC) - run.uploaded).total_seconds()
        for milestone, reached in (
            ("planned", "chunk_count" in record),
            ("first chunk at the endpoint", bool(record.get("chunks_running"))),
            ("assembling", record.get("status") == "finalizing"),
        ):
            if reached:
                run.seen.setdefault(milestone, elapsed)
        if record.get("status") == "in_progress" and "first chunk at the endpoint" in run.seen:
            run.running.append(len(record.get("chunks_running") or {}))
            run.gate.append(gate_in_flight(ddb, table_name))
        if record.get("status") in JOB_TERMINAL or (until == "running" and record.get("chunks_running")):
            return run
        time.sleep(0.2)
    raise TimeoutError(f"job {run.job_id} did not get {until} in {timeout:.0f} s: {run.record.get('status')}")


def finish_job(api: httpx.Client, ddb: Any, table_name: str, run: JobRun, check_output: bool) -> JobRun:
    watch(ddb, table_name, run)
    response = api.get(f"/v1/jobs/{run.job_id}")
    response.raise_for_status()
    run.api = response.json()
    if run.api["status"] != "completed":
        raise RuntimeError(f"job {run.job_id} ended {run.api['status']}: {run.api.get('error')}")
    if check_output:  # the result file: one line per input line, each with its embedding
        lines = [json.loads(line) for line in httpx.get(run.api["output_url"], timeout=60).content.splitlines()]
        run.api["output_lines_checked"] = sum(len(line["output"]["embeddings"][0]) == 384 for line in lines)
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
    waited_out = body["status"] not in harness.TERMINAL
    while body["status"] not in harness.TERMINAL:  # 202: not finished within the wait
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
    latencies = [s.seconds for s in samples]
    return {
        "samples": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "queue_p50": percentile([s.queue_ms / 1000 for s in samples], 50),
        "inference_p50": percentile([s.inference_ms / 1000 for s in samples], 50),
        "record_p50": percentile([(s.queue_ms + s.inference_ms) / 1000 for s in samples], 50),
        "waited_out": sum(s.waited_out for s in samples),
        "seconds": time.monotonic() - started,
        "ends": [s.ended for s in samples],
    }


def time_chunk_finishing(durations: list[tuple[str, float]]) -> None:
    """Times every chunk notification (the completion function's work per chunk) by wrapping the product's
    handler in this process; the product's code is unchanged."""
    from inference_core.logic import job_driver

    on_notification = job_driver.on_notification

    def timed(notification: Any, *rest: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return on_notification(notification, *rest, **kwargs)
        finally:
            durations.append((notification.inference_id.rpartition("-")[0], time.perf_counter() - started))

    job_driver.on_notification = timed


def model_server_rate(url: str, texts: list[str], chunk: int, in_flight: int, bulk: bool = False) -> dict[str, Any]:
    """The texts as the endpoint gets them (chunk objects of BatchLine JSON lines), straight to /invocations;
    `bulk`: with the CustomAttributes the endpoint passes on for a job chunk."""
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
    overrides = (("JobChunkMaxInputs", args.chunk_size), ("JobMaxInFlightChunks", args.in_flight))
    parameters = {name: str(value) for name, value in overrides if value is not None}
    # The job pipeline itself, as #10 set its targets; what the result cache adds or saves is bench/cache.py's.
    parameters["ResultCacheScope"] = args.result_cache
    results: dict[str, Any] = {"parameters": parameters, "other_load": {}}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    with harness.local_stack(parameters=parameters, pollers_per_function=5) as stack:
        from inference_core.logic.auth import create_api_key  # once the stack has set the functions' environment

        meter = harness.count_requests(Meter(owner))
        finishing: list[tuple[str, float]] = []
        time_chunk_finishing(finishing)
        ddb, table_name = stack.client("dynamodb"), stack.stack.table_name if stack.stack else ""
        key_b, _ = create_api_key("bench-tenant-b", "bench.jobs")
        stats_url, model_url = stack.urls["sagemaker"] + "/_local/stats", stack.urls["model"]
        with harness.api_client(stack, harness.api_key(stack)) as a, harness.api_client(stack, key_b) as b:
            predict(a, "warm-up")
            # The values in effect: the template's defaults, or the overrides.
            env = stack.stack.env if stack.stack else {}
            chunk, cap = int(env["JOB_CHUNK_MAX_INPUTS"]), int(env["JOB_MAX_IN_FLIGHT_CHUNKS"])
            # What the gate opens on the local endpoint's one instance (older trees: the cap alone).
            per_instance = env.get("MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE")
            in_flight = min(cap, max(1, int(per_instance) - 1)) if per_instance else cap
            results["chunk_size"], results["in_flight"] = chunk, in_flight
            results["bulk_slice"] = getattr(ServerConfig.from_env(), "bulk_slice_texts", "(not set)")
            model_server_rate(model_url, texts[:chunk], chunk, 1)  # warm-up

            log(f"model server alone ({args.lines} texts) ...")
            model_pid = stack._model.pid if stack._model else os.getpid()
            cpu, model_cpu = cpu_snapshot(), harness.process_seconds(model_pid)
            results["model"] = model_server_rate(model_url, texts, chunk, in_flight)
            results["model"]["cpu_per_text"] = (harness.process_seconds(model_pid) - model_cpu) / len(texts)
            log(f"  {results['model']['rate']:.1f} items/s; its first chunks again as job chunks (priority=bulk) ...")
            some = texts[: chunk * BULK_SAMPLE_CHUNKS]
            results["model_bulk"] = model_server_rate(model_url, some, chunk, in_flight, bulk=True)
            results["other_load"]["model server alone"] = other_load(cpu, cpu := cpu_snapshot())
            log(f"  {results['model_bulk']['rate']:.1f} items/s")

            log("interactive, idle ...")
            meter.phase = "idle interactive"
            results["idle"] = interactive(a, idle_texts, args.concurrency)

            log("small job alone ...")
            meter.phase = "small alone"
            solo = finish_job(b, ddb, table_name, submit_job(b, small_texts, "b-solo"), True)
            time.sleep(1)
            results["other_load"]["idle interactive and small job alone"] = other_load(cpu, cpu := cpu_snapshot())

            log(f"large job ({args.lines} lines) ...")
            meter.phase = "large job"
            invocations_before = httpx.get(stats_url).json()["invocations"]
            results["gate_before"] = gate_in_flight(ddb, table_name)
            model_cpu = harness.process_seconds(model_pid)
            big = watch(ddb, table_name, submit_job(a, texts, "a"), until="running")
            log("  interactive predictions and tenant B's small job during it ...")
            before = job_record(ddb, table_name, big.job_id)
            with ThreadPoolExecutor(max_workers=1) as background:
                behind_future = background.submit(
                    lambda: finish_job(b, ddb, table_name, submit_job(b, small_texts, "b-behind"), True)
                )
                results["busy"] = interactive(a, busy_texts, args.concurrency)
                behind = behind_future.result()
            finish_job(a, ddb, table_name, big, False)
            time.sleep(1)  # the last completion calls land before we stop counting
            meter.phase = None
            results["endpoint_invocations_all"] = httpx.get(stats_url).json()["invocations"] - invocations_before
            # Every text the model embedded in that window: the large job's, the small job's, the interactive ones.
            embedded = args.lines + args.small_lines + args.samples
            results["model_cpu_per_text_in_job"] = (harness.process_seconds(model_pid) - model_cpu) / embedded
            results["other_load"]["large job"] = other_load(cpu, cpu_snapshot())
    results["large"], results["small_solo"], results["small_behind"] = big.summary(), solo.summary(), behind.summary()
    done_chunks = len(before.get("done_chunks") or [])
    results["big_chunks_left_when_small_submitted"] = int(before.get("chunk_count", 0)) - done_chunks
    big_end = datetime.fromisoformat(big.record["completed_at"])
    results["big_done_when_small_finished"] = datetime.fromisoformat(behind.record["completed_at"]) >= big_end
    results["busy"]["during"] = sum(end < big_end for end in results["busy"].pop("ends"))
    results["idle"].pop("ends")
    results["small_solo_requests"] = meter.select("small alone", {solo.job_id, SHARED})
    results["large_requests"] = meter.select("large job", {big.job_id, SHARED})
    results["large_requests_small"] = meter.select("large job", {behind.job_id})
    results["large_requests_other"] = meter.select("large job", {OTHER})
    results["chunks_invoked_twice"] = sorted(
        i for i, n in meter.inference_ids.items() if n > 1 and i.startswith(f"{big.job_id}-")
    )
    results["chunk_finishing"] = [seconds for job_id, seconds in finishing if job_id == big.job_id]
    return results


def _rate(r: dict[str, Any]) -> str:
    return f"{r['rate']:.1f} items/s ({r['seconds']:.1f} s)"


def render(results: dict[str, Any], args: argparse.Namespace, wall: float, revision: str) -> str:
    model, bulk, large, idle, busy = (results[k] for k in ("model", "model_bulk", "large", "idle", "busy"))
    solo, behind = results["small_solo"], results["small_behind"]
    lines = large["lines"]
    by_operation: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    for (function, operation), n in results["large_requests"].items():
        by_operation[operation] += n
        by_function[function] += n
    total, sweeper = sum(by_operation.values()), by_function.get("Sweeper", 0)
    per_1000 = 1000 * by_operation.get("sagemaker-runtime.InvokeEndpointAsync", 0) / lines
    chunk, in_flight, slice_texts = results["chunk_size"], results["in_flight"], results["bulk_slice"]
    invokes_target = 1000 / chunk + 1
    ratio, latency_ratio = large["rate"] / model["rate"], busy["p50"] / idle["p50"]
    chunk_seconds = chunk / model["rate"]
    finishing = results["chunk_finishing"] or [0.0]
    overridden = ", ".join(f"{k}={v}" for k, v in results["parameters"].items())
    first = "first chunk at the endpoint"
    nan = float("nan")
    texts = (
        "bench/corpus.py's mixed-length texts (mostly short, some paragraphs, a few cut at 256 tokens)"
        if args.texts == "mixed"
        else "**short texts only** (bench/corpus.py texts of 3 to 12 words), so that the run stays under 10 minutes "
        "on this machine (`--texts mixed`: the corpus's mixed lengths, several times slower per text on 2 cores)"
    )
    header = ["measurement", "value", "target", ""]
    throughput = [
        (
            f"model server alone: same texts, {model['requests']} POSTs of {chunk} lines to /invocations, "
            f"{in_flight} at a time",
            _rate(model),
        ),
        (
            f"model server alone, the first {bulk['requests']} of those requests again, marked as the endpoint "
            "marks job chunks (`priority=bulk`: the container runs them in slices)",
            _rate(bulk),
        ),
        ("job end to end: PUT of the file -> status completed", _rate(large)),
        ("**ratio job / model server**", f"**{ratio:.2f}**", f">= {RATIO_TARGET}", met(ratio >= RATIO_TARGET)),
        (
            "ratio job / model server running bulk chunks (the pipeline's own overhead)",
            f"{large['rate'] / bulk['rate']:.2f}",
        ),
    ]
    per_line, per_line_met, per_1000_met = (
        total / lines,
        met(total / lines <= REQUESTS_TARGET),
        met(per_1000 <= invokes_target),
    )
    requests = [
        (
            "AWS requests per line (all operations)",
            f"{per_line:.4f} ({total:,} requests)",
            f"<= {REQUESTS_TARGET}",
            per_line_met,
        ),
        (
            "endpoint invocations per 1,000 lines",
            f"{per_1000:.2f}",
            f"<= {invokes_target:.2f} (1000/{chunk} + 1)",
            per_1000_met,
        ),
    ]
    operations = [(op, f"{n:,}", f"{n / lines:.5f}") for op, n in sorted(by_operation.items())]
    latency: list[tuple[Any, ...]] = [
        (label, f"{idle[key]:.2f}", f"{busy[key]:.2f}")
        for label, key in (
            ("p50 s", "p50"),
            ("p99 s", "p99"),
            ("p50 queue_ms (API and dispatcher), s", "queue_p50"),
            ("p50 inference_ms (endpoint queue, model, completion), s", "inference_p50"),
            ("p50 queue_ms + inference_ms (the record's created -> succeeded), s", "record_p50"),
        )
    ]
    latency_met = met(latency_ratio <= LATENCY_TARGET)
    latency += [
        ("p50 record time during / idle", "", f"{busy['record_p50'] / idle['record_p50']:.2f}x"),
        ("not finished within `Prefer: wait=20` (then polled)", idle["waited_out"], busy["waited_out"]),
        ("**p50 during / p50 idle**", "", f"**{latency_ratio:.2f}x**", f"<= {LATENCY_TARGET}x", latency_met),
    ]
    small = [
        (f"{solo['lines']}-line job alone (idle stack), PUT -> completed", f"{solo['seconds']:.1f} s"),
        ("the same job submitted while the large job runs", f"{behind['seconds']:.1f} s"),
        ("**behind / alone**", f"**{behind['seconds'] / solo['seconds']:.2f}x**", "none set", "—"),
    ]
    big_done = (
        "**had already finished when the small one did** (the comparison does not hold)."
        if results["big_done_when_small_finished"]
        else "was still running when the small one completed."
    )
    return f"""# Bulk jobs on the local stack

{harness.machine()}; `python -m bench.jobs` took {wall / 60:.1f} min; {revision}. Template parameters: \
JobChunkMaxInputs={chunk}, JobMaxInFlightChunks/the gate on one instance={in_flight} \
({f"overridden: {overridden}" if overridden else "the template's defaults"}), the rest the template's; 5 pollers per \
function, the sweeper every 10 s. Model container: BULK_SLICE_TEXTS={slice_texts}\
{" (0: the container picks the slice size by device)." if slice_texts == 0 else "."}

Job lines: one text each, {texts}. The model server, moto, the API, the pumps and the local endpoint share this \
machine's cores, so the pipeline's own work competes with the model here; on AWS it runs elsewhere.

## 1. Throughput: a {lines:,}-line job vs the model server alone

{table(header, throughput, "lrrl")}

Job {large["completed"]:,} completed, {large["failed"]} failed, {large["chunks"]} chunks. Seconds after the PUT: \
{", ".join(f"{name} {seconds:.1f}" for name, seconds in large["milestones"].items())}. One chunk is about \
{chunk_seconds:.1f} s of model time; finishing one in the completion function (read its output, write its parts, \
move the counters, launch the next) took p50 {percentile(finishing, 50):.2f} s, max {max(finishing):.2f} s. Its \
chunks at the endpoint at once (polled every 0.2 s): mean {large["running_mean"]:.2f}, max {large["running_max"]}; \
the chunk gate's in_flight: {results["gate_before"]} before the job, {large["gate_min"]} to {large["gate_max"]} \
during it. Model server CPU per text: {model["cpu_per_text"] * 1000:.1f} ms alone, \
{results["model_cpu_per_text_in_job"] * 1000:.1f} ms during the job ({os.cpu_count()} torch threads).

## 2. AWS requests for the large job

{table(header, requests, "lrrl")}

{table(["service.operation", "requests", "per line"], operations, "lrr")}

By function: {", ".join(f"{function} {n:,}" for function, n in by_function.most_common())}. The endpoint took \
{results["endpoint_invocations_all"]} invocations in that window (all jobs' chunks and interactive batches); chunks \
of the large job invoked more than once: {", ".join(f"**{i}**" for i in results["chunks_invoked_twice"]) or "none"}.

Counted: the product's requests that name the large job, plus the jobs' shared records (the chunk gate, the open \
index, reads of several jobs), which serve the small job too: an upper bound. Left out: the small job's \
({sum(results["large_requests_small"].values())}) and the rest's (interactive predictions, API keys, the sweep: \
{sum(results["large_requests_other"].values())}); the user's PUT, S3's events, the pumps' own SQS calls, the \
endpoint's own S3 and SNS calls, the harness's reads. The sweeper runs every 10 s here instead of every 5 minutes \
({sweeper} requests, about 30x AWS's); without it: {(total - sweeper) / lines:.4f} per line. The small job alone: \
{sum(results["small_solo_requests"].values()) / solo["lines"]:.2f} requests per line ({solo["lines"]} lines, one \
chunk: fixed costs dominate).

## 3. Interactive predictions: idle vs while the large job runs

{idle["samples"]} single-text POSTs with `Prefer: wait=20`, {args.concurrency} clients at once; latency is the \
client's round trip. During the job: {busy["during"]} of {busy["samples"]} ended before the large job completed.

{table(["measurement", "idle", "during the job", "target", ""], latency, "lrrrl")}

The extra p50 latency during the job, {busy["p50"] - idle["p50"]:.1f} s, is \
{(busy["p50"] - idle["p50"]) / chunk_seconds:.1f} chunks' worth of model time ({chunk_seconds:.1f} s each; \
{in_flight} chunks may be at the endpoint at once, over all jobs).

## 4. A second tenant's small job behind the large one

{table(header, small, "lrrl")}

Tenant B's job went in with section 3's predictions, once the large job's first chunk was at the endpoint, with \
{results["big_chunks_left_when_small_submitted"]} of {large["chunks"]} chunks left; the large job {big_done} Its \
chunk reached the endpoint {behind["milestones"].get(first, nan):.1f} s after its PUT (alone: \
{solo["milestones"].get(first, nan):.1f} s), after waiting under the chunk gate. Result files read back: \
{solo["output_lines_checked"]} and {behind["output_lines_checked"]} lines with a 384-dimension embedding.

## Other load on the machine

CPU share of other processes (from /proc; above a few percent the times get slower and noisier): \
{", ".join(f"{phase} {share:.0%}" for phase, share in results["other_load"].items())}.
"""


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
    revision = harness.describe("new", harness.REPO, "HEAD")
    with contextlib.redirect_stdout(sys.stderr):  # the functions' cold-start metric lines (EMF) are not the report
        results = run(args)
    harness.publish(render(results, args, time.monotonic() - started, revision), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
