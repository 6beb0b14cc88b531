"""Result-cache benchmark on the local stack: the same workloads on a stack with the cache off and one with it on.

    python -m bench.cache [--lines 20000] [--predictions 400] [--wave 50] [--repeat-share 0.5] [--samples 30]
                          [--no-repeat 300] [--concurrency 8] [--scope tenant|shared] [--raw FILE]
    python -m bench.cache --render FILE     # the report again from a --raw file, without running anything

Two local stacks, one after the other, each in a child process: `ResultCacheScope=off`, then `tenant` (or --scope).
Each runs the same phases with the same texts: C. --no-repeat fresh predictions at once (fire-and-forget), each read
once; A. --predictions in waves of --wave, later waves repeating texts of earlier ones (Zipf-like popularity) so
that --repeat-share of them are repeats; B. --samples `Prefer: wait=20` predictions one at a time, then the same
texts again; K. contract checks, one prediction each; D. a --lines-line job, then the same file again as a new job.

Endpoint inputs are counted exactly (a botocore hook records the InputLocation of every InvokeEndpointAsync and the
harness reads those objects back), AWS requests with the same hook on all the product's clients, and the metrics
the product emits by a wrapper around `metrics.add_metric`; status and job records are read straight from DynamoDB,
uncounted. Writes bench/results/cache.md and prints it; --raw keeps the measurements, --render rewrites the report.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import math
import random
import re
import subprocess
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
from bench.harness import Meter, log, met, operation_of, percentile, table
from bench.jobs import finish_job, submit_job

CONFIGS = ("off", "on")
INPUTS_TARGET = 0.55  # endpoint inputs, cache on / cache off, 50% repeats
LATENCY_TARGET = 0.5  # p50 round trip, all inputs cached / uncached
REQUESTS_TARGET = 0.1  # extra AWS requests per prediction with the cache on, no repeats
JOB_TARGET = 0.05  # endpoint invocations of the second run of a job / the first
JOB_REQUESTS_PER_LINE = 0.05  # bench/jobs.py's target, for reference
WAVE_GAP = 1.0  # seconds between a wave's last prediction finishing and the next wave
COMPARE_LINES = 200  # job output lines compared between the two runs
CACHE_METRIC_WORDS = ("Cache", "Hit", "Miss", "Saved", "AnsweredAtSubmit")
CACHE_PREFIX = "CACHE#"
KEY = re.compile(r"^[A-Z]+#")  # a table key (PRED#..., JOB#..., CACHE#...)
PARAMETERS: tuple[str, ...] = (
    "ResultCacheScope",
    "ResultCacheTtlHours",
    "DispatchBatchSize",
    "DispatchBatchingWindowSeconds",
    "JobChunkMaxInputs",
    "JobMaxInFlightChunks",
    "EndpointItemsPerSecond",
    "InstancePricePerHour",
)
PRICES = harness.REPO / "bench/prices.json"
EVENTUALLY_CONSISTENT_READ_UNITS = 0.5  # per item of up to 4 KB read (a key not found costs the same)
ITEM_OVERHEAD_BYTES = 100  # DynamoDB's storage overhead per item


def unique_texts(count: int) -> list[str]:
    """Distinct short texts (bench/corpus.py's texts of at most 12 words), the same every run."""
    seen: dict[str, None] = {}
    seed = 101
    while len(seen) < count:
        seen.update((text, None) for text in corpus(2 * count + 100, seed) if len(text.split()) <= 12)
        seed += 1
    return list(seen)[:count]


@dataclass
class Texts:
    no_repeat: list[str]  # phase C
    fresh: list[str]  # phase A's new texts
    waves: list[list[tuple[str, bool]]]  # phase A: (text, is a repeat) per prediction, wave by wave
    latency: list[str]  # phase B
    checks: list[str]  # phase K's texts nobody sent before
    job: list[str]  # phase D


def repeat_waves(fresh: list[str], total: int, wave: int, share: float, seed: int = 7) -> list[list[tuple[str, bool]]]:
    """`total` predictions in waves of `wave`: the first wave all new, the later ones mixing new texts with repeats
    of texts sent in earlier waves (`share` of all predictions are repeats, spread evenly over the later waves).
    Repeats follow a Zipf-like popularity (weight 1/rank^0.8, ranks shuffled), as queries of a search box do."""
    rng = random.Random(seed)
    sizes = [min(wave, total - i * wave) for i in range(math.ceil(total / wave))]
    repeats_total, later = round(total * share), sum(sizes[1:])
    if repeats_total > later:
        raise ValueError("--repeat-share too high for one all-new first wave")
    ranks = list(range(1, len(fresh) + 1))
    rng.shuffle(ranks)
    weight = {text: 1 / rank**0.8 for text, rank in zip(fresh, ranks, strict=True)}
    fresh_iter = iter(fresh)
    seen: list[str] = []
    waves: list[list[tuple[str, bool]]] = []
    placed = done = 0
    for index, size in enumerate(sizes):
        repeats = 0
        if index:
            done += size
            repeats = round(repeats_total * done / later) - placed
            placed += repeats
        chosen = rng.choices(seen, weights=[weight[t] for t in seen], k=repeats) if repeats else []
        new = [next(fresh_iter) for _ in range(size - repeats)]
        items = [(t, True) for t in chosen] + [(t, False) for t in new]
        rng.shuffle(items)
        waves.append(items)
        seen += new
    return waves


def make_texts(args: argparse.Namespace) -> Texts:
    fresh_needed = args.predictions - round(args.predictions * args.repeat_share)
    sizes = [args.no_repeat, fresh_needed, args.samples, 4, args.lines]
    pool = unique_texts(sum(sizes))
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    no_repeat, fresh, latency, checks, job = (pool[start : start + n] for start, n in zip(starts, sizes, strict=True))
    return Texts(
        no_repeat, fresh, repeat_waves(fresh, args.predictions, args.wave, args.repeat_share), latency, checks, job
    )


def _of(mapping: dict[tuple[str, str], Any], phase: str) -> dict[str, Any]:
    """The part of a (phase, name) -> value mapping that is this phase's, by name."""
    return {name: value for (p, name), value in sorted(mapping.items()) if p == phase}


@dataclass
class CacheMeter(Meter):
    """harness.Meter, plus by phase: the InputLocation of every endpoint invocation, the metrics the product emits,
    the requests that name only cache entries, the cache entries written and the seconds spent in requests."""

    locations: list[tuple[str, str]] = field(default_factory=list)  # (phase, InputLocation)
    metric_sums: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # -> [sum of values, count]
    cache_only: Counter[tuple[str, str]] = field(default_factory=Counter)  # (phase, operation) -> requests
    # (phase, "entries" | "bytes" | "write_units") -> cache entries written, their size, DynamoDB write units
    cache_writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)  # (phase, operation) -> client-side seconds

    def register(self, events: Any) -> None:
        super().register(events)
        events.register("after-call.*.*", self.on_after_call)

    def on_params(self, params: dict[str, Any], context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_params(params, context, **kwargs)
        if self.phase is None or context is None:
            return
        if "InputLocation" in params:
            context["bench_input_location"] = params["InputLocation"]
        keys = [s for s in harness.strings(params) if KEY.match(s)]
        if keys and all(k.startswith(CACHE_PREFIX) for k in keys):
            context["bench_cache_only"] = True
        for requests in (params.get("RequestItems") or {}).values():
            for request in requests if isinstance(requests, list) else []:
                item = (request.get("PutRequest") or {}).get("Item") or {}
                if str((item.get("pk") or {}).get("S", "")).startswith(CACHE_PREFIX):
                    size = item_size(item)
                    with self.lock:
                        self.cache_writes[(self.phase, "entries")] += 1
                        self.cache_writes[(self.phase, "bytes")] += size
                        self.cache_writes[(self.phase, "write_units")] += math.ceil(size / 1024)

    def on_call(self, model: Any, context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_call(model, context, **kwargs)
        phase = self.phase
        if phase is None or context is None:
            return
        with self.lock:
            if context.get("bench_input_location"):
                self.locations.append((phase, str(context["bench_input_location"])))
            if context.get("bench_cache_only"):
                self.cache_only[(phase, operation_of(model))] += 1
        context["bench_started"] = time.perf_counter()

    def on_after_call(self, model: Any, context: dict[str, Any] | None, **_: Any) -> None:
        started, phase = (context or {}).get("bench_started"), self.phase
        if phase is not None and started is not None:
            key = (phase, operation_of(model))
            with self.lock:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def count_metrics(self) -> None:
        """Wraps the product's one Metrics object so every add_metric is summed here too."""
        from inference_core.observability import metrics

        add = metrics.add_metric

        def counted(*args: Any, **kwargs: Any) -> Any:
            phase = self.phase
            if phase is not None:
                name = kwargs.get("name", args[0] if args else "?")
                value = kwargs.get("value", args[2] if len(args) > 2 else 0)
                with self.lock:
                    sums = self.metric_sums.setdefault((phase, str(name)), [0.0, 0.0])
                    sums[0] += float(value)
                    sums[1] += 1
            return add(*args, **kwargs)

        metrics.add_metric = counted  # type: ignore[method-assign]


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers about one byte per two digits)."""
    size = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        size += len(name.encode())
        if kind == "S":
            size += len(str(raw).encode())
        elif kind == "B":
            size += len(raw) if isinstance(raw, bytes | bytearray) else len(base64.b64decode(raw))
        elif kind == "N":
            size += len(str(raw).strip("-").lstrip("0").replace(".", "")) // 2 + 1
        else:
            size += 1
    return size


def endpoint_inputs(s3: Any, locations: list[str]) -> tuple[int, int, int]:
    """(texts in the input objects of these invocations, every invocation counted; texts in the distinct objects:
    an object invoked again counted once; objects that could not be read)."""
    sizes: dict[str, int | None] = {}
    for location in set(locations):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:  # reported as unreadable
            sizes[location] = None
            continue
        inputs = [json.loads(line).get("inputs") for line in body.splitlines() if line.strip()]
        sizes[location] = sum(len(i) if isinstance(i, list) else 1 for i in inputs)
    total = sum(sizes[location] or 0 for location in locations)
    return total, sum(n or 0 for n in sizes.values()), sum(n is None for n in sizes.values())


@dataclass
class Phase:
    """Opens a counting window; `summary` returns what the product did in it."""

    meter: CacheMeter
    s3: Any
    name: str
    started: float = 0.0

    def __enter__(self) -> Phase:
        self.meter.phase = self.name
        self.started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.meter.phase = None

    def summary(self, submitted_inputs: int) -> dict[str, Any]:
        meter, name = self.meter, self.name
        inputs, distinct, unreadable = endpoint_inputs(self.s3, [loc for p, loc in meter.locations if p == name])
        requests = meter.requests(name)
        return {
            "seconds": time.monotonic() - self.started,
            "submitted_inputs": submitted_inputs,
            "invocations": requests.get("sagemaker-runtime.InvokeEndpointAsync", 0),
            "endpoint_inputs": inputs,
            "distinct_inputs": distinct,
            "unreadable_inputs": unreadable,
            "requests": dict(requests),
            "by_function": dict(meter.by_function(name)),
            "metrics": _of(meter.metric_sums, name),
            "cache_only": _of(meter.cache_only, name),
            "cache_writes": _of(meter.cache_writes, name),
            "request_seconds": _of(meter.seconds, name),
        }


def wait_finished(ddb: Any, table_name: str, ids: list[str], timeout: float = 600) -> dict[str, dict[str, str]]:
    done = harness.wait_records(ddb, table_name, ids, timeout)
    if len(done) < len(ids):
        raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} predictions unfinished after {timeout:.0f} s")
    failed = [r for r in done.values() if r["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} predictions did not succeed, e.g. {failed[0]}")
    return done


def timings(done: list[dict[str, str]]) -> dict[str, float]:
    """p50 of created -> succeeded, and of its two parts where the record has started_at: created -> started
    (API, queue, dispatcher) and started -> succeeded (endpoint queue, model, completion)."""
    started = [r for r in done if r.get("started_at")]

    def p50(records: list[dict[str, str]], begin: str, end: str) -> float:
        at = datetime.fromisoformat
        values = [(at(r[end]) - at(r[begin])).total_seconds() for r in records]
        return percentile(values, 50) if values else float("nan")

    return {
        "total_p50": p50(done, "created_at", "completed_at"),
        "queue_p50": p50(started, "created_at", "started_at"),
        "run_p50": p50(started, "started_at", "completed_at"),
        "without_started": len(done) - len(started),
    }


def submit_all(api: httpx.Client, bodies: list[dict[str, Any]], concurrency: int) -> list[str]:
    """Fire-and-forget: POST each body (no Prefer), the ids in the same order."""

    def post(body: dict[str, Any]) -> str:
        response = api.post("/v1/predictions", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(post, bodies))


@dataclass
class Waited:
    seconds: float  # the client's round trip, submit -> succeeded (polling after a 202)
    code: int  # the POST's status code (200: finished within the wait)
    first_status: str  # the status in the POST's reply
    body: dict[str, Any]  # the finished prediction


def predict_wait(api: httpx.Client, body: dict[str, Any], headers: dict[str, str] | None = None) -> Waited:
    started = time.perf_counter()
    response = api.post("/v1/predictions", json=body, headers={"Prefer": "wait=20", **(headers or {})})
    if response.status_code >= 400:
        return Waited(time.perf_counter() - started, response.status_code, "refused", response.json())
    current = reply = response.json()
    while current["status"] not in harness.TERMINAL:
        time.sleep(0.1)
        current = api.get(f"/v1/predictions/{reply['id']}").json()
    return Waited(time.perf_counter() - started, response.status_code, reply["status"], current)


def vectors(body: dict[str, Any]) -> list[list[float]]:
    return [
        [float(x) for x in (memoryview(base64.b64decode(e)).cast("f") if isinstance(e, str) else e)]
        for e in (body.get("output") or {}).get("embeddings") or []
    ]


def max_diff(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=math.inf)


@dataclass
class Bench:
    """What the phases work with: tenant A's and B's API clients, the uncounted DynamoDB and S3 clients, the meter."""

    api: httpx.Client
    other: httpx.Client
    ddb: Any
    table_name: str
    s3: Any
    meter: CacheMeter
    concurrency: int

    def phase(self, name: str) -> Phase:
        return Phase(self.meter, self.s3, name)


def phase_no_repeats(bench: Bench, texts: list[str]) -> dict[str, Any]:
    api = bench.api
    with bench.phase("C no repeats") as phase:
        ids = submit_all(api, [{"inputs": t} for t in texts], bench.concurrency)
        done = wait_finished(bench.ddb, bench.table_name, ids)
        with ThreadPoolExecutor(max_workers=bench.concurrency) as pool:
            codes = list(pool.map(lambda i: api.get(f"/v1/predictions/{i}").status_code, ids))
        time.sleep(2)  # the last completion's writes (status, then cache) land before the window closes
    if any(code != 200 for code in codes):
        raise RuntimeError(f"GET answered {Counter(codes)}")
    return {**phase.summary(len(texts)), "predictions": len(ids), "timings": timings(list(done.values()))}


def phase_repeats(bench: Bench, waves: list[list[tuple[str, bool]]]) -> dict[str, Any]:
    finished: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    wave_seconds: list[float] = []
    with bench.phase("A 50% repeats") as phase:
        for index, wave in enumerate(waves):
            started = time.monotonic()
            ids = submit_all(bench.api, [{"inputs": text} for text, _ in wave], bench.concurrency)
            done = wait_finished(bench.ddb, bench.table_name, ids)
            wave_seconds.append(time.monotonic() - started)
            for prediction_id, (_, repeat) in zip(ids, wave, strict=True):
                finished[repeat].append(done[prediction_id])
            log(f"    wave {index + 1}/{len(waves)}: {len(wave)} predictions in {wave_seconds[-1]:.1f} s")
            time.sleep(WAVE_GAP)
    total = sum(len(w) for w in waves)
    repeated = Counter(text for wave in waves for text, repeat in wave if repeat)
    return {
        **phase.summary(total),
        "predictions": total,
        "repeats": sum(repeated.values()),
        "repeated_texts": len(repeated),
        "most_repeated": max(repeated.values(), default=0),
        "waves": len(waves),
        "wave_p50": percentile(wave_seconds, 50),
        "fresh": timings(finished[False]),
        "repeat": timings(finished[True]),
    }


def phase_latency(bench: Bench, texts: list[str]) -> dict[str, Any]:
    passes: dict[str, Any] = {}
    for name in ("first", "again"):
        with bench.phase(f"B {name}") as phase:
            samples = [predict_wait(bench.api, {"inputs": text}) for text in texts]
            time.sleep(2)
        bad = [s for s in samples if s.body.get("status") != "succeeded"]
        if bad:
            raise RuntimeError(f"{len(bad)} Prefer: wait predictions did not succeed: {bad[0].body}")
        seconds = [s.seconds for s in samples]
        embeddings = [vectors(s.body)[0] for s in samples]
        queue_ms = [float((s.body.get("metrics") or {}).get("queue_ms") or 0) for s in samples]
        passes[name] = summary = {
            **phase.summary(len(texts)),
            "samples": len(samples),
            "p50": percentile(seconds, 50),
            "p90": percentile(seconds, 90),
            "mean": sum(seconds) / len(seconds),
            "answered_at_submit": sum(s.code == 200 and s.first_status == "succeeded" for s in samples),
            "queue_ms_p50": percentile(queue_ms, 50),
            "output_bytes_per_text": sum(len(json.dumps(e)) for e in embeddings) / len(embeddings),
            "input_bytes_per_text": sum(len(json.dumps(t)) for t in texts) / len(texts),
        }
        if name == "first":
            passes["embeddings"] = embeddings
        else:
            first = passes["embeddings"]
            summary["max_diff_vs_first"] = max(max_diff(a, b) for a, b in zip(first, embeddings, strict=True))
    return passes


def check_result(index: int, waited: Waited, cached_vectors: list[list[float]]) -> str:
    """Whether contract check `index` got the right vectors (see phase_checks' cases)."""
    if waited.code >= 400:
        error = waited.body.get("error") or {}
        where = [".".join(str(p) for p in d.get("location", [])) for d in error.get("details") or []]
        return f"refused: {error.get('code')} {', '.join(w for w in where if w)}".strip()
    got = vectors(waited.body)
    if waited.body.get("status") != "succeeded":
        return f"ended {waited.body.get('status')}"
    if index == 3:  # raw mean-pooled vectors are not unit length
        n = math.sqrt(sum(x * x for x in got[0]))
        return f"norm {n:.3f}" + (" (**normalised: the cached result?**)" if abs(n - 1) < 1e-3 else " ok")
    if index == 5:
        diff_cached, diff_swapped = max_diff(got[1], cached_vectors[5]), max_diff(got[0], cached_vectors[5])
        if diff_cached < 1e-4 and diff_swapped > 1e-3:
            return "ok (2nd = cached text's vector)"
        return f"**wrong order or values** (2nd vs cached {diff_cached:.2g})"
    diff = max_diff(got[0], cached_vectors[index])
    return "ok (same vector)" if diff < 1e-4 else f"**differs** ({diff:.2g})"


def phase_checks(
    bench: Bench, cached: list[str], cached_vectors: list[list[float]], new: list[str]
) -> list[dict[str, Any]]:
    """One prediction each, on texts the latency phase already finished (cached, where the cache is on)."""
    api, other = bench.api, bench.other
    cases: list[tuple[str, httpx.Client, dict[str, Any], dict[str, str], str]] = [
        ("`parameters.cache: false` on a cached text", api, {"inputs": cached[0], "parameters": {"cache": False}}, {},
         "1 (opted out)"),
        ("`Cache-Control: no-store` on a cached text", api, {"inputs": cached[1]}, {"Cache-Control": "no-store"},
         "1 (opted out)"),
        ("another tenant sends a cached text", other, {"inputs": cached[2]}, {}, "1 if scope is tenant, else 0"),
        ("`normalize: false` on a text cached normalised", api,
         {"inputs": cached[3], "parameters": {"normalize": False}}, {}, "1 (another result)"),
        ("`encoding_format: base64` on a cached text", api,
         {"inputs": cached[4], "parameters": {"encoding_format": "base64"}}, {}, "0 (same result, other encoding)"),
        ("2 inputs: a new text, then a cached one", api, {"inputs": [new[0], cached[5]]}, {}, "1 (only the new text)"),
    ]  # fmt: skip
    results = []
    for index, (name, client, body, headers, expected) in enumerate(cases):
        with bench.phase(f"K{index}") as phase:
            waited = predict_wait(client, body, headers)
            time.sleep(1.5)
        summary = phase.summary(len(body["inputs"]) if isinstance(body["inputs"], list) else 1)
        results.append(
            {
                "name": name,
                "expected": expected,
                "code": waited.code,
                "status": waited.body.get("status"),
                "endpoint_inputs": summary["endpoint_inputs"],
                "invocations": summary["invocations"],
                "correct": check_result(index, waited, cached_vectors),
            }
        )
    return results


def stream_lines(url: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with httpx.stream("GET", url, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.strip():
                found.append(json.loads(line))
            if len(found) >= count:
                break
    return found


def phase_jobs(bench: Bench, texts: list[str]) -> list[dict[str, Any]]:
    api, ddb, table_name = bench.api, bench.ddb, bench.table_name
    runs: list[dict[str, Any]] = []
    heads: list[list[dict[str, Any]]] = []
    for index in (1, 2):
        log(f"  job run {index} ({len(texts):,} lines) ...")
        with bench.phase(f"D run {index}") as phase:
            run = finish_job(api, ddb, table_name, submit_job(api, texts, "cache-bench"), False)
            time.sleep(2)
        summary = phase.summary(len(texts))
        counts = run.api.get("request_counts") or {}
        total = sum(summary["requests"].values())
        sweeper = summary["by_function"].get("Sweeper", 0)
        again = sorted(i for i, n in bench.meter.inference_ids.items() if n > 1 and i.startswith(f"{run.job_id}-"))
        summary.update(
            job_id=run.job_id,
            lines=len(texts),
            wall_seconds=run.seconds,
            chunks=int(run.record.get("chunk_count", 0)),
            completed=counts.get("completed"),
            failed=counts.get("failed"),
            requests_per_line=total / len(texts),
            requests_per_line_no_sweeper=(total - sweeper) / len(texts),
            invoked_again=again,
        )
        heads.append(stream_lines(run.api["output_url"], COMPARE_LINES) if run.api.get("output_url") else [])
        runs.append(summary)
        log(
            f"    {run.seconds:.1f} s, {summary['invocations']} invocations, {summary['endpoint_inputs']} endpoint "
            f"inputs, {counts}"
        )
    runs[1]["same_output_lines"] = sum(
        a.get("custom_id") == b.get("custom_id") and max_diff(vectors(a)[0], vectors(b)[0]) < 1e-4
        for a, b in zip(heads[0], heads[1], strict=False)
    )
    runs[1]["compared_lines"] = min(len(heads[0]), len(heads[1]))
    return runs


def run_config(config: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside a child process: one local stack (cache off or on), every phase."""
    texts = make_texts(args)
    parameters = {"ResultCacheScope": "off" if config == "off" else args.scope}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    results: dict[str, Any] = {"config": config, "other_load": {}}
    load = results["other_load"]
    with harness.local_stack(parameters=parameters, pollers_per_function=5) as stack:
        from inference_core.logic.auth import create_api_key  # once the stack has set the functions' environment

        meter = harness.count_requests(CacheMeter())
        meter.count_metrics()
        ddb, s3 = stack.client("dynamodb"), stack.client("s3")
        assert stack.stack is not None
        table_name, resolver = stack.stack.table_name, stack.stack.resolver
        effective = {}
        for name in PARAMETERS:
            try:
                effective[name] = resolver.parameter(name)
            except KeyError:
                effective[name] = "(not in template)"
        results["parameters"] = effective
        results["cache_env"] = {k: v for k, v in stack.stack.env.items() if "CACHE" in k}
        key_b, _ = create_api_key("bench-tenant-b", "bench.cache")
        with harness.api_client(stack, harness.api_key(stack)) as a, harness.api_client(stack, key_b) as b:
            bench = Bench(a, b, ddb, table_name, s3, meter, args.concurrency)
            predict_wait(a, {"inputs": "warm-up"})
            predict_wait(b, {"inputs": "warm-up for the second tenant"})
            cpu = harness.cpu_snapshot()
            overall = time.monotonic()

            log(f"[{config}] C: {len(texts.no_repeat)} predictions, no repeats ...")
            results["no_repeats"] = phase_no_repeats(bench, texts.no_repeat)
            load["C"] = harness.other_load(cpu, cpu := harness.cpu_snapshot())

            log(f"[{config}] A: {args.predictions} predictions, {args.repeat_share:.0%} repeats ...")
            results["repeats"] = phase_repeats(bench, texts.waves)
            load["A"] = harness.other_load(cpu, cpu := harness.cpu_snapshot())

            log(f"[{config}] B: {args.samples} x Prefer: wait=20, fresh then again ...")
            results["latency"] = phase_latency(bench, texts.latency)
            cached_vectors = results["latency"].pop("embeddings")
            load["B"] = harness.other_load(cpu, cpu := harness.cpu_snapshot())

            log(f"[{config}] K: contract checks ...")
            results["checks"] = phase_checks(bench, texts.latency, cached_vectors, texts.checks)

            log(f"[{config}] D: a {args.lines:,}-line job, twice ...")
            results["jobs"] = phase_jobs(bench, texts.job)
            load["D"] = harness.other_load(cpu, harness.cpu_snapshot())
            results["seconds"] = time.monotonic() - overall
    return results


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def _cache_metrics(phase: dict[str, Any]) -> str:
    """The cache's metrics of a phase: counts summed, ratios (a percent per lookup) averaged."""
    shown = [
        f"{name} mean {total / max(count, 1):.1f}% of {count:g} lookups"
        if name.endswith("Ratio")
        else f"{name} {total:g}"
        for name, (total, count) in phase["metrics"].items()
        if any(word in name for word in CACHE_METRIC_WORDS)
    ]
    return ", ".join(shown) or "none emitted"


def _own(phase: dict[str, Any], per: float, unit: str = "prediction") -> str:
    """The cache's own requests (naming only cache entries) and its write units, per `per`."""
    own, writes = sum(phase["cache_only"].values()), phase["cache_writes"]
    text = f"{own / per:.3f}"
    if own:
        text += " (" + ", ".join(f"{op} {n}" for op, n in sorted(phase["cache_only"].items())) + ")"
    if writes.get("entries"):
        text += (
            f"; {writes['entries']} entries written, {writes['bytes'] / writes['entries']:.0f} B each, "
            f"{writes['write_units'] / per:.2f} write units per {unit}"
        )
    return text


def _ops_table(columns: list[tuple[str, dict[str, Any], float]]) -> str:
    """service.operation -> requests per unit, one column per (label, phase, units), and their sum."""
    operations = sorted({op for _, phase, _ in columns for op in phase["requests"]})
    rows = [[op, *(f"{phase['requests'].get(op, 0) / units:.3f}" for _, phase, units in columns)] for op in operations]
    rows.append(["**all**", *(f"**{sum(phase['requests'].values()) / units:.3f}**" for _, phase, units in columns)])
    return table(["service.operation", *(label for label, _, _ in columns)], rows, "l" + "r" * len(columns))


def _mean_ms(job: dict[str, Any], operation: str) -> str:
    calls = job["requests"].get(operation)
    return f"{1000 * job['request_seconds'].get(operation, 0) / calls:.0f}" if calls else "-"


def cost_section(on: dict[str, Any]) -> str:
    """Per 1M inputs at list prices: what the cache costs (lookups, write-back, storage for its TTL) against the
    endpoint time and data a hit saves, with the entry size measured here."""
    prices = json.loads(PRICES.read_text())["prices"]

    def unit(name: str) -> float:
        return float(prices[name]["usd"]) / float(prices[name]["per"])

    phases = [on["no_repeats"], on["repeats"], on["latency"]["first"], *on["jobs"]]
    entries = sum(p["cache_writes"].get("entries", 0) for p in phases)
    if not entries:
        return "No cache entries were written on the cache-on stack: nothing to price."
    entry_bytes = sum(p["cache_writes"].get("bytes", 0) for p in phases) / entries
    write_units = sum(p["cache_writes"].get("write_units", 0) for p in phases) / entries
    parameters = on["parameters"]
    ttl_hours = float(parameters.get("ResultCacheTtlHours", 168))
    items_per_second = float(parameters.get("EndpointItemsPerSecond", 3000))
    instance_hour = float(parameters.get("InstancePricePerHour", prices["sagemaker_instance_hour"]["usd"]))
    latency = on["latency"]["first"]
    text_bytes = latency["input_bytes_per_text"] + latency["output_bytes_per_text"]
    million, gib = 1_000_000, 1024**3
    lookup = million * EVENTUALLY_CONSISTENT_READ_UNITS * unit("dynamodb_ondemand_rru")
    write = million * write_units * unit("dynamodb_ondemand_wru")
    storage_rate = unit("dynamodb_storage_gb_month") + unit("dynamodb_pitr_gb_month")
    storage = million * (entry_bytes + ITEM_OVERHEAD_BYTES) / gib * storage_rate * ttl_hours / 730
    endpoint = million / items_per_second / 3600 * instance_hour
    data = million * text_bytes / gib * unit("sagemaker_data_processed_gb")
    break_even = (lookup + write + storage) / (endpoint + data + write + storage)
    rows = [
        ("lookup (every input that uses the cache)", f"${lookup:.3f}",
         f"{EVENTUALLY_CONSISTENT_READ_UNITS} read units (eventually consistent, hit or miss)"),
        ("write-back (every miss)", f"${write:.3f}", f"{write_units:.2f} write units per entry"),
        ("storage for the TTL (every miss)", f"${storage:.3f}", f"({entry_bytes:.0f} + {ITEM_OVERHEAD_BYTES}) bytes "
         f"for {ttl_hours:g} h, table storage + point-in-time recovery (on in the template)"),
        ("**saved: endpoint instance time (every hit)**", f"**${endpoint:.3f}**",
         f"1/{items_per_second:g} s of an instance at ${instance_hour:g}/h"),
        ("saved: endpoint data processed (every hit)", f"${data:.3f}", f"{text_bytes:.0f} bytes in + out per text"),
        ("**hit ratio above which the cache saves money**", f"**{break_even:.0%}**",
         "(lookup + write + storage) / (saved + write + storage)"),
    ]  # fmt: skip
    return f"""## What the cache costs and saves, per 1 million inputs (list prices)

From the entries written here ({entries:,} entries, {entry_bytes:.0f} bytes each as DynamoDB sizes them, \
{write_units:.2f} write units each) and bench/prices.json (us-east-1 on-demand). The endpoint time a hit saves uses \
the template's EndpointItemsPerSecond={items_per_second:g} (an assumption, not measured: see bench/results/cost.md) \
and InstancePricePerHour={instance_hour:g}.

{table(["item", "per 1M inputs", "how"], rows, "lrl")}

Not in these figures: the pipeline requests a hit avoids or adds (sections 1 and 2: they depend on the path), Lambda \
time, and an instance start that a fully cached burst or job may avoid on an endpoint scaled to zero."""


def render(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, wall: float, revision: str, finished: str = ""
) -> str:
    off, on = results["off"], results["on"]
    a_off, a_on = off["repeats"], on["repeats"]
    b_off, b_on = off["latency"], on["latency"]
    c_off, c_on = off["no_repeats"], on["no_repeats"]
    j_off, j_on = off["jobs"], on["jobs"]
    inputs_ratio = _ratio(a_on["endpoint_inputs"], a_off["endpoint_inputs"])
    latency_ratio = _ratio(b_on["again"]["p50"], b_off["again"]["p50"])
    all_off, all_on = sum(c_off["requests"].values()), sum(c_on["requests"].values())
    per_off, per_on = all_off / c_off["predictions"], all_on / c_on["predictions"]
    delta = per_on - per_off
    sweeper_off, sweeper_on = c_off["by_function"].get("Sweeper", 0), c_on["by_function"].get("Sweeper", 0)
    delta_no_sweeper = (all_on - sweeper_on) / c_on["predictions"] - (all_off - sweeper_off) / c_off["predictions"]
    busy_jobs = {name: r["other_load"].get("D", 0.0) for name, r in (("off", off), ("on", on))}
    job_ratio = _ratio(j_on[1]["invocations"], j_on[0]["invocations"])
    lines, repeats, predictions = j_on[0]["lines"], a_on["repeats"], a_on["predictions"]
    batch_off, batch_on = (c["endpoint_inputs"] / max(c["invocations"], 1) for c in (c_off, c_on))
    batch_size = on["parameters"].get("DispatchBatchSize")
    command = " ".join(["python -m bench.cache", *args.argv])
    bench_options = " ".join(
        f"--{name.replace('_', '-')} {getattr(args, name)}"
        for name in ("predictions", "wave", "repeat_share", "samples", "no_repeat", "lines", "concurrency", "scope")
    )

    def params(r: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in r["parameters"].items())

    def env(r: dict[str, Any]) -> str:
        return str(r["cache_env"] or "(no *CACHE* variables)")

    def functions(c: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c["by_function"].items()))

    def timing(c: dict[str, Any]) -> str:
        t = c["timings"]
        return f"{t['total_p50']:.2f} s ({t['queue_p50']:.2f}, {t['run_p50']:.2f})"

    def result(k: dict[str, Any]) -> str:
        return f"{k['code']} {k['status']}, {k['correct']}"

    def hit_ratio(phase: dict[str, Any]) -> str:
        return f"{1 - phase['distinct_inputs'] / max(phase['submitted_inputs'], 1):.1%}"

    targets = [
        (1, f"inputs sent to the endpoint, {predictions} single-text predictions, {repeats / predictions:.0%} repeats",
         a_off["endpoint_inputs"], a_on["endpoint_inputs"], f"**{inputs_ratio:.2f}x**", f"<= {INPUTS_TARGET}x",
         met(inputs_ratio <= INPUTS_TARGET)),
        (2, f"p50 submit -> succeeded, `Prefer: wait=20`, {b_on['again']['samples']} texts sent a second time "
         "(cache on: all cached)", f"{b_off['again']['p50']:.3f} s", f"{b_on['again']['p50']:.3f} s",
         f"**{latency_ratio:.2f}x**", f"<= {LATENCY_TARGET}x", met(latency_ratio <= LATENCY_TARGET)),
        (3, f"AWS requests per prediction, {c_on['predictions']} predictions, no repeats (submit, process, one GET)",
         f"{per_off:.3f}", f"{per_on:.3f}",
         f"**{delta:+.3f}** ({delta_no_sweeper:+.3f} without the local sweeper's requests)", f"<= +{REQUESTS_TARGET}",
         met(delta <= REQUESTS_TARGET)),
        (4, f"endpoint invocations, 2nd run / 1st run of the same {lines:,}-line job",
         f"{j_off[1]['invocations']} / {j_off[0]['invocations']}",
         f"{j_on[1]['invocations']} / {j_on[0]['invocations']}",
         f"**{job_ratio:.1%}**", f"<= {JOB_TARGET:.0%}", met(job_ratio <= JOB_TARGET)),
    ]  # fmt: skip
    parts = (
        ("total_p50", "created -> succeeded"),
        ("queue_p50", "created -> started"),
        ("run_p50", "started -> succeeded"),
    )
    served = (a_on["submitted_inputs"] - a_on["endpoint_inputs"]) / max(repeats, 1)
    repeats_rows = [
        ("inputs submitted", a_off["submitted_inputs"], a_on["submitted_inputs"]),
        ("inputs sent to the endpoint (counted in the batch input objects)",
         a_off["endpoint_inputs"], a_on["endpoint_inputs"]),
        ("endpoint invocations", a_off["invocations"], a_on["invocations"]),
        ("hit ratio: 1 - inputs in distinct batch objects / inputs submitted", hit_ratio(a_off), hit_ratio(a_on)),
        ("of the repeats, served from the cache", "", f"{served:.1%}"),
        *((f"p50 {part} (status records), {kind}", f"{a_off[key][stat]:.2f} s", f"{a_on[key][stat]:.2f} s")
          for key, kind in (("fresh", "new texts"), ("repeat", "repeats")) for stat, part in parts),
        ("records without started_at (finished without a batch), repeats",
         a_off["repeat"]["without_started"], a_on["repeat"]["without_started"]),
        ("p50 wave time (submit -> all finished)", f"{a_off['wave_p50']:.2f} s", f"{a_on['wave_p50']:.2f} s"),
        ("the cache's own requests per prediction (naming only cache entries)",
         _own(a_off, a_off["predictions"]), _own(a_on, predictions)),
        ("cache metrics emitted", _cache_metrics(a_off), _cache_metrics(a_on)),
    ]  # fmt: skip
    cells = [b_off["first"], b_off["again"], b_on["first"], b_on["again"]]
    latency_rows = [
        [label, *(fmt.format(c[key]) for c in cells)]
        for label, key, fmt in (
            ("p50 s", "p50", "{:.3f}"),
            ("p90 s", "p90", "{:.3f}"),
            ("mean s", "mean", "{:.3f}"),
            ("answered `succeeded` in the POST reply", "answered_at_submit", "{}"),
            ("p50 metrics.queue_ms", "queue_ms_p50", "{:.0f}"),
            ("endpoint invocations", "invocations", "{}"),
            ("inputs sent to the endpoint", "endpoint_inputs", "{}"),
        )
    ]
    latency_rows.append(["the cache's own requests per prediction", *(_own(c, c["samples"]) for c in cells)])
    pass_labels = ("off, 1st", "off, 2nd", "on, 1st (new)", "on, 2nd (cached)")
    pass_header = [
        "",
        "cache off, 1st pass",
        "cache off, 2nd pass",
        "cache on, 1st pass (new)",
        "cache on, 2nd pass (cached)",
    ]
    no_repeat_rows = [
        [op, n_off, n_on, f"{n_off / c_off['predictions']:.3f}", f"{n_on / c_on['predictions']:.3f}"]
        for op in sorted(set(c_off["requests"]) | set(c_on["requests"]))
        for n_off, n_on in [(c_off["requests"].get(op, 0), c_on["requests"].get(op, 0))]
    ]
    per_prediction = ["per prediction, off", "per prediction, on"]
    no_repeat_rows.append(["**all**", all_off, all_on, f"**{per_off:.3f}**", f"**{per_on:.3f}**"])
    jobs = [j_off[0], j_off[1], j_on[0], j_on[1]]
    job_cells = {
        "wall time s": [f"{j['wall_seconds']:.1f}" for j in jobs],
        "lines completed / failed": [f"{j['completed']} / {j['failed']}" for j in jobs],
        "chunks": [j["chunks"] for j in jobs],
        "endpoint invocations": [j["invocations"] for j in jobs],
        "chunks invoked more than once":
            [", ".join(i.rsplit("-", 1)[-1] for i in j["invoked_again"]) or "none" for j in jobs],
        "inputs sent to the endpoint": [f"{j['endpoint_inputs']:,}" for j in jobs],
        "inputs in distinct chunk objects (a chunk invoked again counted once)":
            [f"{j['distinct_inputs']:,}" for j in jobs],
        "hit ratio: 1 - inputs in distinct objects / lines":
            [f"{1 - j['distinct_inputs'] / j['lines']:.1%}" for j in jobs],
        "AWS requests per line (all, sweeper included)": [f"{j['requests_per_line']:.4f}" for j in jobs],
        "AWS requests per line without the sweeper": [f"{j['requests_per_line_no_sweeper']:.4f}" for j in jobs],
        **{op: [j["requests"].get(op, 0) for j in jobs]
           for op in ("dynamodb.BatchGetItem", "dynamodb.BatchWriteItem", "s3.PutObject", "s3.GetObject")},
        **{f"mean ms per {op}": [_mean_ms(j, op) for j in jobs]
           for op in ("dynamodb.TransactWriteItems", "dynamodb.BatchWriteItem", "dynamodb.BatchGetItem",
                      "dynamodb.Query")},
        "the cache's own requests per line": [f"{sum(j['cache_only'].values()) / j['lines']:.4f}" for j in jobs],
        "cache entries written; DynamoDB write units per line":
            [f"{j['cache_writes'].get('entries', 0):,}; {j['cache_writes'].get('write_units', 0) / j['lines']:.2f}"
             for j in jobs],
    }  # fmt: skip
    busy = ", ".join(f"{share:.0%} of the CPU during the {name} stack's job runs" for name, share in busy_jobs.items())
    compare = (
        f"**Compare wall times within a stack**: other processes used {busy}. " if max(busy_jobs.values()) > 0.1 else ""
    )
    hit_phases = [
        ("3: no repeats", c_on),
        ("1: 50% repeats", a_on),
        ("2: 1st pass (new)", b_on["first"]),
        ("2: 2nd pass (cached)", b_on["again"]),
        ("4: job run 1", j_on[0]),
        ("4: job run 2", j_on[1]),
    ]
    hit_header = ["phase", "inputs submitted", "sent to the endpoint (distinct objects)", "hit ratio", "metrics"]
    hit_rows = [
        (label, f"{p['submitted_inputs']:,}", f"{p['endpoint_inputs']:,} ({p['distinct_inputs']:,})", hit_ratio(p),
         _cache_metrics(p))
        for label, p in hit_phases
    ]  # fmt: skip
    all_metrics = sorted({name for phase in (a_on, c_on, j_on[0], j_on[1]) for name in phase["metrics"]})
    check_header = ["check", "expected endpoint inputs, cache on", "off: inputs", "off: result", "on: inputs"]
    check_rows = [
        (k_on["name"], k_on["expected"], *(cell for k in (k_off, k_on) for cell in (k["endpoint_inputs"], result(k))))
        for k_off, k_on in zip(off["checks"], on["checks"], strict=True)
    ]
    unreadable = sum(
        p["unreadable_inputs"]
        for r in (off, on)
        for p in (r["repeats"], r["no_repeats"], r["latency"]["first"], r["latency"]["again"], *r["jobs"])
    )

    def load(r: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.0%}" for k, v in r["other_load"].items())

    return f"""# Result cache on the local stack

{harness.machine(finished)}; `{command}` took {wall / 60:.1f} min; {revision}.

Two local stacks, one after the other, each in its own process, the same phases and texts: **cache off** \
({params(off)}) and **cache on** ({params(on)}). The functions' environment: off {env(off)}, on {env(on)}. Event \
pumps: 5 pollers per function; sweeper every 10 s; moto's DynamoDB runs one request at a time with atomic \
transactions (local_stack/moto_fixes.py). Bench parameters: {bench_options}.

All texts are short (corpus texts of 3 to 12 words), distinct unless a workload repeats them, the same in both \
stacks. Everything shares this machine's cores: times are this machine's, the counts exact and machine-independent.

## Targets

{table(["#", "measurement", "cache off", "cache on", "value", "target", ""], targets, "llrrrrl")}

## 1. Endpoint inputs with 50% repeats

{predictions} single-text predictions, fire-and-forget ({args.concurrency} clients), in {a_on["waves"]} waves of \
{args.wave}, each sent {WAVE_GAP:g} s after the previous one finished. The first wave is all new; later waves mix \
new texts with repeats of earlier ones ({repeats} repeats, {repeats / predictions:.0%}), drawn with a Zipf-like \
popularity (weight 1/rank^0.8): {a_on["repeated_texts"]} distinct texts repeated, the most popular \
{a_on["most_repeated"]} times. A perfect cache sends each distinct text once: {predictions - repeats} inputs, \
{(predictions - repeats) / predictions:.2f}x.

{table(["", "cache off", "cache on"], repeats_rows, "lrr")}

AWS requests per prediction, by operation:

{_ops_table([("cache off", a_off, a_off["predictions"]), ("cache on", a_on, predictions)])}

## 2. `Prefer: wait=20` when every input is cached

{b_on["first"]["samples"]} new texts, one prediction at a time (`Prefer: wait=20`, then polling GET every 0.1 s), \
then the same texts again in the same order. Latency: the client's round trip, submit -> succeeded.

{table(pass_header, latency_rows, "lrrrr")}

AWS requests per prediction, by operation:

{_ops_table([(label, cell, cell["samples"]) for label, cell in zip(pass_labels, cells, strict=True)])}

Cached 2nd pass / cache-on 1st pass: **{_ratio(b_on["again"]["p50"], b_on["first"]["p50"]):.2f}x**. Largest \
difference of a text's embedding between the passes: off {b_off["again"]["max_diff_vs_first"]:.2g}, on \
{b_on["again"]["max_diff_vs_first"]:.2g}. Cache metrics, cache on: 1st pass {_cache_metrics(b_on["first"])}; 2nd \
pass {_cache_metrics(b_on["again"])}.

## 3. AWS requests per prediction without repeats

{c_on["predictions"]} new texts submitted at once by {args.concurrency} clients, waited for, each read once with \
GET /v1/predictions/{{id}}. Counted: every request of the product's clients in that window, the sweeper's \
included; not counted: the pumps' ReceiveMessage/DeleteMessageBatch, the endpoint's own calls, the harness's reads.

{table(["service.operation", "cache off", "cache on", *per_prediction], no_repeat_rows, "lrrrr")}

Endpoint invocations: off {c_off["invocations"]} (mean batch {batch_off:.1f} inputs), on {c_on["invocations"]} \
(mean batch {batch_on:.1f}); per-batch requests move with the batch sizes. By function: off {functions(c_off)}; on \
{functions(c_on)}. The cache's own requests per prediction: off {_own(c_off, c_off["predictions"])}; on \
**{_own(c_on, c_on["predictions"])}**. The sweeper (every 10 s here, 5 minutes on AWS) sent {sweeper_off} \
requests off, {sweeper_on} on; without them the difference is {delta_no_sweeper:+.3f} per prediction. Write-back: \
{c_on["requests"].get("dynamodb.BatchWriteItem", 0) / max(c_on["invocations"], 1):.2f} BatchWriteItem per batch \
(25 entries a request at most), {batch_on:.1f} texts here, where full batches of DispatchBatchSize={batch_size} \
would make it {math.ceil(int(on["parameters"].get("DispatchBatchSize", 50)) / 25)}/{batch_size}. p50 created -> \
succeeded (created -> started, started -> succeeded): off {timing(c_off)}, on {timing(c_on)}. Cache metrics, cache \
on: {_cache_metrics(c_on)}.

## 4. The same {lines:,}-line job twice

POST /v1/jobs and PUT of the same JSONL file (same `custom_id`s), once the previous run has completed (+2 s). Wall \
time: the PUT -> the job record's `completed_at`.

{table(["", "off, run 1", "off, run 2", "on, run 1", "on, run 2"], [[k, *v] for k, v in job_cells.items()], "lrrrr")}

{compare}2nd run / 1st run wall time: off {_ratio(j_off[1]["wall_seconds"], j_off[0]["wall_seconds"]):.2f}x, on \
**{_ratio(j_on[1]["wall_seconds"], j_on[0]["wall_seconds"]):.2f}x**. Of the first {j_on[1]["compared_lines"]} \
output lines, the 2nd run matches the 1st (same `custom_id`, same vector) in: off {j_off[1]["same_output_lines"]}, \
on {j_on[1]["same_output_lines"]}. bench/jobs.py's target, for reference: <= {JOB_REQUESTS_PER_LINE} AWS requests \
per line. Cache metrics, cache on: run 1 {_cache_metrics(j_on[0])}; run 2 {_cache_metrics(j_on[1])}.

## Hit ratio and the product's cache metrics, cache on

Hit ratio = 1 - inputs in the distinct batch (or chunk) objects sent to the endpoint / inputs submitted. Metrics: \
the phase's `metrics.add_metric` calls whose name mentions Cache, Hit, Miss, Saved or AnsweredAtSubmit, summed \
(CacheHitRatio, a percent per lookup, averaged).

{table(hit_header, hit_rows, "lrrrl")}

All metric names the product emitted in those phases: {", ".join(all_metrics) or "none"}.

{cost_section(on)}

## Contract checks

One prediction each (`Prefer: wait=20`) on texts section 2 already sent; the endpoint inputs are that prediction's. \
Cache off is the control: every input goes to the endpoint there.

{table([*check_header, "on: result"], check_rows, "llrlrl")}

## Other load on the machine

CPU share of other processes, per phase (from /proc; above a few percent the times get noisier): off {load(off)}; \
on {load(on)}. Phases took {off["seconds"] / 60:.1f} min (off) and {on["seconds"] / 60:.1f} min (on). Batch input \
objects that could not be read back: {unreadable}.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000, help="lines of the bulk job (run twice)")
    parser.add_argument("--predictions", type=int, default=400, help="predictions of the repeats workload")
    parser.add_argument("--wave", type=int, default=50, help="predictions per wave of the repeats workload")
    parser.add_argument("--repeat-share", type=float, default=0.5, help="share of repeats in that workload")
    parser.add_argument("--samples", type=int, default=30, help="Prefer: wait predictions per pass")
    parser.add_argument("--no-repeat", type=int, default=300, help="predictions of the no-repeats workload")
    parser.add_argument("--concurrency", type=int, default=8, help="clients at once (fire-and-forget phases)")
    parser.add_argument("--scope", choices=["tenant", "shared"], default="tenant", help="ResultCacheScope when on")
    parser.add_argument("--output", type=Path, default=Path("bench/results/cache.md"))
    parser.add_argument("--raw", type=Path, help="also write the measurements as JSON here")
    parser.add_argument("--render", type=Path, help="only write the report from a --raw file of an earlier run")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.child:
        with contextlib.redirect_stdout(sys.stderr):  # the functions' metric lines (EMF) are not the report
            result = run_config(args.child, args)
        args.result_file.write_text(json.dumps(result))
        return 0
    if args.render:
        saved = json.loads(args.render.read_text())
        earlier = parser.parse_args(saved["argv"])
        earlier.argv = saved["argv"]
        report = render(saved["results"], earlier, saved["wall"], saved["revision"], saved.get("finished", ""))
        harness.publish(report, args.output)
        return 0
    args.argv = [a for a in raw if a != "--raw" and not (args.raw and a == str(args.raw))]
    started = time.monotonic()
    try:
        revision = harness.describe("new", harness.REPO, "HEAD")
    except (OSError, subprocess.CalledProcessError):
        revision = "revision unknown (not a git checkout)"
    results = harness.children("bench.cache", CONFIGS, args.argv)
    wall = time.monotonic() - started
    if args.raw:
        finished = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
        saved = {"results": results, "wall": wall, "revision": revision, "argv": args.argv, "finished": finished}
        args.raw.write_text(json.dumps(saved))
    harness.publish(render(results, args, wall, revision), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
