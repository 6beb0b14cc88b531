"""Result-cache benchmark on the local stack: the same workloads on a stack with the cache off and one with it on.

    python -m bench.cache [--lines 20000] [--predictions 400] [--wave 50] [--repeat-share 0.5] [--samples 30]
                          [--no-repeat 300] [--concurrency 8] [--scope tenant|shared] [--raw FILE]
    python -m bench.cache --render FILE     # the report again from a --raw file, without running anything

One run, two local stacks one after the other, each in a child process of its own (the functions' settings and
clients are built once per process): template parameter `ResultCacheScope=off`, then the template's default
(`tenant`, or --scope). Each stack runs the same phases with the same texts, in this order:

C. no repeats: --no-repeat fresh single-text predictions submitted at once by --concurrency clients
   (fire-and-forget), waited for, and each result read once with GET /v1/predictions/{id};
A. 50% repeats: --predictions single-text predictions in waves of --wave, fire-and-forget; each wave is submitted
   once the one before it has finished (plus 1 s), the first wave holds only new texts, and the later ones mix new
   texts with repeats of texts of earlier (finished) waves, drawn with a Zipf-like popularity, so that
   --repeat-share of all predictions are repeats;
B. `Prefer: wait=20` latency: --samples fresh texts, one prediction at a time, then the same texts again in the
   same order (on the cache-on stack the second pass is all cached);
K. contract checks, one prediction each (opt-outs, another tenant, other parameters, a half-cached request);
D. a --lines-line bulk job (POST /v1/jobs + PUT of the JSONL file), then the very same file again as a new job.

Endpoint inputs are counted exactly: a botocore hook on the product's sagemaker-runtime client records the
InputLocation of every InvokeEndpointAsync, and the harness reads those objects (JSON Lines, one `inputs` list per
line) from the moto bucket afterwards. AWS requests are counted with the same hook on all the product's clients
(API and functions, in this process), as bench/jobs.py does. Metrics the product emits (Powertools
`metrics.add_metric`, e.g. the cache's hit counters) are summed by a wrapper in this process; the product's code
is unchanged. The harness reads status records and job records straight from DynamoDB with its own, uncounted
client. The local stack's moto DynamoDB runs one request at a time with atomic transactions
(local_stack/moto_fixes.py), as DynamoDB behaves. Writes bench/results/cache.md and prints it; --raw keeps the measurements, --render rewrites the report from them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
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
    finished_records,
    local_stack,
    log,
    met,
    percentile,
    publish,
)
from bench.jobs import Meter, Tenant, _strings, cpu_snapshot, finish_job, other_load, submit_job

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
PARAMETERS = (
    "ResultCacheScope",
    "ResultCacheTtlHours",
    "DispatchBatchSize",
    "DispatchBatchingWindowSeconds",
    "JobChunkMaxInputs",
    "JobMaxInFlightChunks",
    "EndpointItemsPerSecond",
    "InstancePricePerHour",
)
PRICES = REPO / "bench/prices.json"
EVENTUALLY_CONSISTENT_READ_UNITS = 0.5  # per item of up to 4 KB read (a key not found costs the same)
ITEM_OVERHEAD_BYTES = 100  # DynamoDB's storage overhead per item


# ---------------------------------------------------------------- texts


def unique_texts(count: int) -> list[str]:
    """Distinct short texts (bench/corpus.py's texts of at most 12 words), the same every run."""
    seen: dict[str, None] = {}
    seed = 101
    while len(seen) < count:
        for text in corpus(2 * count + 100, seed):
            if len(text.split()) <= 12:
                seen.setdefault(text, None)
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
    count = math.ceil(total / wave)
    sizes = [min(wave, total - i * wave) for i in range(count)]
    repeats_total = round(total * share)
    later = sum(sizes[1:])
    if repeats_total > later:
        raise ValueError("--repeat-share too high for one all-new first wave")
    ranks = list(range(1, len(fresh) + 1))
    rng.shuffle(ranks)
    weight = {text: 1 / rank**0.8 for text, rank in zip(fresh, ranks, strict=True)}
    fresh_iter = iter(fresh)
    seen: list[str] = []
    waves: list[list[tuple[str, bool]]] = []
    placed = 0
    done = 0
    for index, size in enumerate(sizes):
        if index == 0:
            repeats = 0
        else:
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
    parts: list[list[str]] = []
    start = 0
    for size in sizes:
        parts.append(pool[start : start + size])
        start += size
    no_repeat, fresh, latency, checks, job = parts
    waves = repeat_waves(fresh, args.predictions, args.wave, args.repeat_share)
    return Texts(no_repeat, fresh, waves, latency, checks, job)


# ---------------------------------------------------------------- the emulator


# ---------------------------------------------------------------- counting


@dataclass
class CacheMeter(Meter):
    """bench/jobs.py's Meter (requests by phase, owner, function, operation), plus the InputLocation of every
    endpoint invocation and the metrics the product emits, by phase."""

    locations: list[tuple[str, str]] = field(default_factory=list)  # (phase, InputLocation)
    # (phase, metric) -> [sum of values, number of values]
    metric_sums: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # (phase, operation) -> requests that name only cache entries (the cache's own requests)
    cache_only: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (phase, "entries" | "bytes" | "write_units") -> cache entries written, their size, DynamoDB write units
    cache_writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (phase, operation) -> seconds spent in requests (client side, retries included)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)

    def register(self, events: Any) -> None:
        super().register(events)
        events.register("after-call.*.*", self.on_after_call)

    def on_params(self, params: dict[str, Any], context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_params(params, context, **kwargs)
        if self.phase is None or context is None:
            return
        if "InputLocation" in params:
            context["bench_input_location"] = params["InputLocation"]
        keys = [s for s in _strings(params) if KEY.match(s)]
        if keys and all(k.startswith(CACHE_PREFIX) for k in keys):
            context["bench_cache_only"] = True
        for requests in (params.get("RequestItems") or {}).values():
            if not isinstance(requests, list):
                continue
            for request in requests:
                item = (request.get("PutRequest") or {}).get("Item") or {}
                if str((item.get("pk") or {}).get("S", "")).startswith(CACHE_PREFIX):
                    size = item_size(item)
                    with self.lock:
                        self.cache_writes[(self.phase, "entries")] += 1
                        self.cache_writes[(self.phase, "bytes")] += size
                        self.cache_writes[(self.phase, "write_units")] += math.ceil(size / 1024)

    def on_call(self, model: Any, context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_call(model, context, **kwargs)
        location = (context or {}).get("bench_input_location")
        phase = self.phase
        if phase is None:
            return
        if location:
            with self.lock:
                self.locations.append((phase, str(location)))
        if (context or {}).get("bench_cache_only"):
            with self.lock:
                self.cache_only[(phase, f"{model.service_model.service_name}.{model.name}")] += 1
        if context is not None:
            context["bench_started"] = time.perf_counter()

    def on_after_call(self, model: Any, context: dict[str, Any] | None, **_: Any) -> None:
        started = (context or {}).get("bench_started")
        phase = self.phase
        if phase is None or started is None:
            return
        key = (phase, f"{model.service_model.service_name}.{model.name}")
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

    def requests(self, phase: str) -> Counter[str]:
        """operation -> requests of this phase (every owner)."""
        selected: Counter[str] = Counter()
        for (p, _, _, operation), n in self.counts.items():
            if p == phase:
                selected[operation] += n
        return selected

    def by_function(self, phase: str) -> Counter[str]:
        selected: Counter[str] = Counter()
        for (p, _, function, _), n in self.counts.items():
            if p == phase:
                selected[function] += n
        return selected

    def metrics_of(self, phase: str) -> dict[str, list[float]]:
        """metric -> [sum, count] of this phase."""
        return {name: list(value) for (p, name), value in sorted(self.metric_sums.items()) if p == phase}

    def seconds_of(self, phase: str) -> dict[str, float]:
        return {operation: n for (p, operation), n in self.seconds.items() if p == phase}

    def cache_only_of(self, phase: str) -> dict[str, int]:
        return {operation: n for (p, operation), n in self.cache_only.items() if p == phase}

    def cache_writes_of(self, phase: str) -> dict[str, int]:
        return {what: n for (p, what), n in self.cache_writes.items() if p == phase}


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers about one byte per two digits)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
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
        texts = 0
        for line in body.splitlines():
            if line.strip():
                inputs = json.loads(line).get("inputs")
                texts += len(inputs) if isinstance(inputs, list) else 1
        sizes[location] = texts
    total = sum(sizes[location] or 0 for location in locations)
    distinct = sum(n or 0 for n in sizes.values())
    return total, distinct, sum(n is None for n in sizes.values())


@dataclass
class Phase:
    """Opens a counting window; `close` returns what the product did in it."""

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
        locations = [loc for phase, loc in self.meter.locations if phase == self.name]
        inputs, distinct, unreadable = endpoint_inputs(self.s3, locations)
        requests = self.meter.requests(self.name)
        return {
            "seconds": time.monotonic() - self.started,
            "submitted_inputs": submitted_inputs,
            "invocations": requests.get("sagemaker-runtime.InvokeEndpointAsync", 0),
            "endpoint_inputs": inputs,
            "distinct_inputs": distinct,
            "unreadable_inputs": unreadable,
            "requests": dict(requests),
            "by_function": dict(self.meter.by_function(self.name)),
            "metrics": self.meter.metrics_of(self.name),
            "cache_only": self.meter.cache_only_of(self.name),
            "cache_writes": self.meter.cache_writes_of(self.name),
            "request_seconds": self.meter.seconds_of(self.name),
        }


# ---------------------------------------------------------------- predictions


def wait_finished(ddb: Any, table: str, ids: list[str], timeout: float = 600) -> dict[str, dict[str, str]]:
    done: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} predictions unfinished after {timeout:.0f} s")
        done.update(finished_records(ddb, table, [i for i in ids if i not in done]))
        if len(done) < len(ids):
            time.sleep(0.2)
    failed = [r for r in done.values() if r["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} predictions did not succeed, e.g. {failed[0]}")
    return done


def record_seconds(record: dict[str, str]) -> float:
    return (
        datetime.fromisoformat(record["completed_at"]) - datetime.fromisoformat(record["created_at"])
    ).total_seconds()


def timings(done: list[dict[str, str]]) -> dict[str, float]:
    """p50 of created -> succeeded, and of its two parts where the record has started_at: created -> started
    (API, queue, dispatcher) and started -> succeeded (endpoint queue, model, completion)."""
    started = [r for r in done if r.get("started_at")]
    at = datetime.fromisoformat

    def p50(values: list[float]) -> float:
        return percentile(values, 50) if values else float("nan")

    return {
        "total_p50": p50([record_seconds(r) for r in done]),
        "queue_p50": p50([(at(r["started_at"]) - at(r["created_at"])).total_seconds() for r in started]),
        "run_p50": p50([(at(r["completed_at"]) - at(r["started_at"])).total_seconds() for r in started]),
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
    reply = response.json()
    current = reply
    while current["status"] not in TERMINAL:
        time.sleep(0.1)
        current = api.get(f"/v1/predictions/{reply['id']}").json()
    return Waited(time.perf_counter() - started, response.status_code, reply["status"], current)


def vectors(body: dict[str, Any]) -> list[list[float]]:
    output = body.get("output") or {}
    found: list[list[float]] = []
    for embedding in output.get("embeddings") or []:
        if isinstance(embedding, str):
            raw = base64.b64decode(embedding)
            found.append([float(x) for x in memoryview(raw).cast("f")])
        else:
            found.append([float(x) for x in embedding])
    return found


def max_diff(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=math.inf)


def norm(a: list[float]) -> float:
    return math.sqrt(sum(x * x for x in a))


# ---------------------------------------------------------------- the phases


def phase_no_repeats(
    api: httpx.Client, ddb: Any, table: str, meter: CacheMeter, s3: Any, texts: list[str], concurrency: int
) -> dict[str, Any]:
    with Phase(meter, s3, "C no repeats") as phase:
        ids = submit_all(api, [{"inputs": t} for t in texts], concurrency)
        done = wait_finished(ddb, table, ids)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            codes = list(pool.map(lambda i: api.get(f"/v1/predictions/{i}").status_code, ids))
        time.sleep(2)  # the last completion's writes (status, then cache) land before the window closes
    if any(code != 200 for code in codes):
        raise RuntimeError(f"GET answered {Counter(codes)}")
    result = phase.summary(len(texts))
    result["predictions"] = len(ids)
    result["timings"] = timings(list(done.values()))
    return result


def phase_repeats(
    api: httpx.Client,
    ddb: Any,
    table: str,
    meter: CacheMeter,
    s3: Any,
    waves: list[list[tuple[str, bool]]],
    concurrency: int,
) -> dict[str, Any]:
    finished: dict[bool, list[dict[str, str]]] = {True: [], False: []}
    wave_seconds: list[float] = []
    with Phase(meter, s3, "A 50% repeats") as phase:
        for index, wave in enumerate(waves):
            started = time.monotonic()
            ids = submit_all(api, [{"inputs": text} for text, _ in wave], concurrency)
            done = wait_finished(ddb, table, ids)
            wave_seconds.append(time.monotonic() - started)
            for prediction_id, (_, repeat) in zip(ids, wave, strict=True):
                finished[repeat].append(done[prediction_id])
            log(f"    wave {index + 1}/{len(waves)}: {len(wave)} predictions in {wave_seconds[-1]:.1f} s")
            time.sleep(WAVE_GAP)
    total = sum(len(w) for w in waves)
    result = phase.summary(total)
    repeated = Counter(text for wave in waves for text, repeat in wave if repeat)
    result.update(
        predictions=total,
        repeats=sum(repeated.values()),
        repeated_texts=len(repeated),
        most_repeated=max(repeated.values(), default=0),
        waves=len(waves),
        wave_p50=percentile(wave_seconds, 50),
        fresh=timings(finished[False]),
        repeat=timings(finished[True]),
    )
    return result


def phase_latency(api: httpx.Client, meter: CacheMeter, s3: Any, texts: list[str]) -> dict[str, Any]:
    passes: dict[str, Any] = {}
    first: list[list[float]] = []
    for name in ("first", "again"):
        with Phase(meter, s3, f"B {name}") as phase:
            samples = [predict_wait(api, {"inputs": text}) for text in texts]
            time.sleep(2)
        bad = [s for s in samples if s.body.get("status") != "succeeded"]
        if bad:
            raise RuntimeError(f"{len(bad)} Prefer: wait predictions did not succeed: {bad[0].body}")
        seconds = [s.seconds for s in samples]
        summary = phase.summary(len(texts))
        embeddings = [vectors(s.body)[0] for s in samples]
        summary.update(
            samples=len(samples),
            p50=percentile(seconds, 50),
            p90=percentile(seconds, 90),
            mean=sum(seconds) / len(seconds),
            answered_at_submit=sum(s.code == 200 and s.first_status == "succeeded" for s in samples),
            queue_ms_p50=percentile([float((s.body.get("metrics") or {}).get("queue_ms") or 0) for s in samples], 50),
            output_bytes_per_text=sum(len(json.dumps(e)) for e in embeddings) / len(embeddings),
            input_bytes_per_text=sum(len(json.dumps(t)) for t in texts) / len(texts),
        )
        if name == "first":
            first = embeddings
        else:
            summary["max_diff_vs_first"] = max(max_diff(a, b) for a, b in zip(first, embeddings, strict=True))
        passes[name] = summary
    passes["embeddings"] = first
    return passes


def phase_checks(
    api: httpx.Client,
    other: httpx.Client,
    meter: CacheMeter,
    s3: Any,
    cached: list[str],
    cached_vectors: list[list[float]],
    new: list[str],
) -> list[dict[str, Any]]:
    """One prediction each, on texts the latency phase already finished (cached, where the cache is on)."""
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
        with Phase(meter, s3, f"K{index}") as phase:
            waited = predict_wait(client, body, headers)
            time.sleep(1.5)
        summary = phase.summary(len(body["inputs"]) if isinstance(body["inputs"], list) else 1)
        got = vectors(waited.body) if waited.code < 400 else []
        correct = "ok"
        if waited.code >= 400:
            error = waited.body.get("error") or {}
            where = [".".join(str(p) for p in d.get("location", [])) for d in error.get("details") or []]
            correct = f"refused: {error.get('code')} {', '.join(w for w in where if w)}".strip()
        if waited.code < 400:
            if waited.body.get("status") != "succeeded":
                correct = f"ended {waited.body.get('status')}"
            elif index == 3:  # raw mean-pooled vectors are not unit length
                n = norm(got[0])
                correct = f"norm {n:.3f}" + (" (**normalised: the cached result?**)" if abs(n - 1) < 1e-3 else " ok")
            elif index == 5:
                diff_cached = max_diff(got[1], cached_vectors[5])
                diff_swapped = max_diff(got[0], cached_vectors[5])
                correct = (
                    "ok (2nd = cached text's vector)"
                    if diff_cached < 1e-4 and diff_swapped > 1e-3
                    else f"**wrong order or values** (2nd vs cached {diff_cached:.2g})"
                )
            else:
                source = cached_vectors[index]
                diff = max_diff(got[0], source)
                correct = "ok (same vector)" if diff < 1e-4 else f"**differs** ({diff:.2g})"
        results.append(
            {
                "name": name,
                "expected": expected,
                "code": waited.code,
                "status": waited.body.get("status"),
                "endpoint_inputs": summary["endpoint_inputs"],
                "invocations": summary["invocations"],
                "correct": correct,
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


def phase_jobs(
    tenant: Tenant, ddb: Any, table: str, meter: CacheMeter, s3: Any, texts: list[str]
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    heads: list[list[dict[str, Any]]] = []
    for index in (1, 2):
        log(f"  job run {index} ({len(texts):,} lines) ...")
        with Phase(meter, s3, f"D run {index}") as phase:
            run = finish_job(tenant, ddb, table, submit_job(tenant, texts, "cache-bench"), False)
            time.sleep(2)
        summary = phase.summary(len(texts))
        counts = run.api.get("request_counts") or {}
        total = sum(summary["requests"].values())
        sweeper = summary["by_function"].get("Sweeper", 0)
        summary.update(
            job_id=run.job_id,
            lines=len(texts),
            wall_seconds=run.seconds,
            chunks=int(run.record.get("chunk_count", 0)),
            completed=counts.get("completed"),
            failed=counts.get("failed"),
            requests_per_line=total / len(texts),
            requests_per_line_no_sweeper=(total - sweeper) / len(texts),
            invoked_again=sorted(i for i, n in meter.inference_ids.items() if n > 1 and i.startswith(f"{run.job_id}-")),
        )
        heads.append(stream_lines(run.api["output_url"], COMPARE_LINES) if run.api.get("output_url") else [])
        runs.append(summary)
        log(
            f"    {run.seconds:.1f} s, {summary['invocations']} invocations, {summary['endpoint_inputs']} endpoint "
            f"inputs, {counts}"
        )
    same = 0
    for a, b in zip(heads[0], heads[1], strict=False):
        if a.get("custom_id") == b.get("custom_id") and max_diff(vectors(a)[0], vectors(b)[0]) < 1e-4:
            same += 1
    runs[1]["same_output_lines"] = same
    runs[1]["compared_lines"] = min(len(heads[0]), len(heads[1]))
    return runs


def run_config(config: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside a child process: one local stack (cache off or on), every phase."""
    texts = make_texts(args)
    parameters = {"ResultCacheScope": "off"} if config == "off" else {"ResultCacheScope": args.scope}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    results: dict[str, Any] = {"config": config, "other_load": {}}
    with local_stack(parameters=parameters, pollers_per_function=5) as stack:
        # Imported once the stack has set the functions' environment, which the settings read.
        from inference_core.logic.auth import create_api_key

        meter = count_requests(CacheMeter())
        meter.count_metrics()
        ddb, s3 = stack.client("dynamodb"), stack.client("s3")
        assert stack.stack is not None
        table = stack.stack.table_name
        resolver = stack.stack.resolver
        effective = {}
        for name in PARAMETERS:
            try:
                effective[name] = resolver.parameter(name)
            except KeyError:
                effective[name] = "(not in template)"
        results["parameters"] = effective
        results["cache_env"] = {k: v for k, v in stack.stack.env.items() if "CACHE" in k}
        key_a = api_key(stack)
        key_b, _ = create_api_key("bench-tenant-b", "bench.cache")
        with api_client(stack, key_a) as a, api_client(stack, key_b) as b:
            predict_wait(a, {"inputs": "warm-up"})
            predict_wait(b, {"inputs": "warm-up for the second tenant"})
            cpu = cpu_snapshot()
            overall = time.monotonic()

            log(f"[{config}] C: {len(texts.no_repeat)} predictions, no repeats ...")
            results["no_repeats"] = phase_no_repeats(a, ddb, table, meter, s3, texts.no_repeat, args.concurrency)
            results["other_load"]["C"] = other_load(cpu, cpu := cpu_snapshot())

            log(f"[{config}] A: {args.predictions} predictions, {args.repeat_share:.0%} repeats ...")
            results["repeats"] = phase_repeats(a, ddb, table, meter, s3, texts.waves, args.concurrency)
            results["other_load"]["A"] = other_load(cpu, cpu := cpu_snapshot())

            log(f"[{config}] B: {args.samples} x Prefer: wait=20, fresh then again ...")
            latency = phase_latency(a, meter, s3, texts.latency)
            cached_vectors = latency.pop("embeddings")
            results["latency"] = latency
            results["other_load"]["B"] = other_load(cpu, cpu := cpu_snapshot())

            log(f"[{config}] K: contract checks ...")
            results["checks"] = phase_checks(a, b, meter, s3, texts.latency, cached_vectors, texts.checks)

            log(f"[{config}] D: a {args.lines:,}-line job, twice ...")
            results["jobs"] = phase_jobs(Tenant("local-dev", a), ddb, table, meter, s3, texts.job)
            results["other_load"]["D"] = other_load(cpu, cpu_snapshot())
            results["seconds"] = time.monotonic() - overall
    return results


# ---------------------------------------------------------------- the report


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def _cache_metrics(phase: dict[str, Any]) -> str:
    """The cache's metrics of a phase: counts summed, ratios (a percent per lookup) averaged."""
    shown = []
    for name, (total, count) in phase["metrics"].items():
        if not any(word in name for word in CACHE_METRIC_WORDS):
            continue
        if name.endswith("Ratio"):
            shown.append(f"{name} mean {total / max(count, 1):.1f}% of {count:g} lookups")
        else:
            shown.append(f"{name} {total:g}")
    return ", ".join(shown) or "none emitted"


def _own(phase: dict[str, Any], per: float, unit: str = "prediction") -> str:
    """The cache's own requests (naming only cache entries) and its write units, per `per`."""
    own = sum(phase["cache_only"].values())
    writes = phase["cache_writes"]
    text = f"{own / per:.3f}" + (
        " (" + ", ".join(f"{op} {n}" for op, n in sorted(phase["cache_only"].items())) + ")" if own else ""
    )
    if writes.get("entries"):
        text += (
            f"; {writes['entries']} entries written, {writes['bytes'] / writes['entries']:.0f} B each, "
            f"{writes['write_units'] / per:.2f} write units per {unit}"
        )
    return text


def _ops_table(columns: list[tuple[str, dict[str, Any], float]]) -> list[str]:
    """service.operation -> requests per unit, one column per (label, phase, units)."""
    operations = sorted({op for _, phase, _ in columns for op in phase["requests"]})
    out = [
        "| service.operation | " + " | ".join(label for label, _, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for operation in operations:
        out.append(
            f"| {operation} | "
            + " | ".join(f"{phase['requests'].get(operation, 0) / units:.3f}" for _, phase, units in columns)
            + " |"
        )
    out.append(
        "| **all** | "
        + " | ".join(f"**{sum(phase['requests'].values()) / units:.3f}**" for _, phase, units in columns)
        + " |"
    )
    return out


def cost_section(on: dict[str, Any]) -> list[str]:
    """Per 1M inputs at list prices: what the cache costs (lookups, write-back, storage for its TTL) against the
    endpoint time and data a hit saves, with the entry size measured here."""
    prices = json.loads(PRICES.read_text())["prices"]

    def unit(name: str) -> float:
        return float(prices[name]["usd"]) / float(prices[name]["per"])

    phases = [on["no_repeats"], on["repeats"], on["latency"]["first"], *on["jobs"]]
    entries = sum(p["cache_writes"].get("entries", 0) for p in phases)
    if not entries:
        return ["No cache entries were written on the cache-on stack: nothing to price.", ""]
    entry_bytes = sum(p["cache_writes"].get("bytes", 0) for p in phases) / entries
    write_units = sum(p["cache_writes"].get("write_units", 0) for p in phases) / entries
    parameters = on["parameters"]
    ttl_hours = float(parameters.get("ResultCacheTtlHours", 168))
    items_per_second = float(parameters.get("EndpointItemsPerSecond", 3000))
    instance_hour = float(parameters.get("InstancePricePerHour", prices["sagemaker_instance_hour"]["usd"]))
    latency = on["latency"]["first"]
    text_bytes = latency["input_bytes_per_text"] + latency["output_bytes_per_text"]
    million = 1_000_000
    gib = 1024**3
    lookup = million * EVENTUALLY_CONSISTENT_READ_UNITS * unit("dynamodb_ondemand_rru")
    write = million * write_units * unit("dynamodb_ondemand_wru")
    storage_rate = unit("dynamodb_storage_gb_month") + unit("dynamodb_pitr_gb_month")
    storage = million * (entry_bytes + ITEM_OVERHEAD_BYTES) / gib * storage_rate * ttl_hours / 730
    endpoint = million / items_per_second / 3600 * instance_hour
    data = million * text_bytes / gib * unit("sagemaker_data_processed_gb")
    break_even = (lookup + write + storage) / (endpoint + data + write + storage)
    return [
        "## What the cache costs and saves, per 1 million inputs (list prices)",
        "",
        f"From the entries written here ({entries:,} entries, {entry_bytes:.0f} bytes each as DynamoDB sizes them, "
        f"{write_units:.2f} write units each) and bench/prices.json (us-east-1 on-demand). The endpoint time a hit "
        f"saves uses the template's EndpointItemsPerSecond={items_per_second:g} (an assumption, not measured: see "
        f"bench/results/cost.md) and InstancePricePerHour={instance_hour:g}.",
        "",
        "| item | per 1M inputs | how |",
        "|---|---:|---|",
        f"| lookup (every input that uses the cache) | ${lookup:.3f} | {EVENTUALLY_CONSISTENT_READ_UNITS} read units "
        "(eventually consistent, hit or miss) |",
        f"| write-back (every miss) | ${write:.3f} | {write_units:.2f} write units per entry |",
        f"| storage for the TTL (every miss) | ${storage:.3f} | ({entry_bytes:.0f} + {ITEM_OVERHEAD_BYTES}) bytes for "
        f"{ttl_hours:g} h, table storage + point-in-time recovery (on in the template) |",
        f"| **saved: endpoint instance time (every hit)** | **${endpoint:.3f}** | 1/{items_per_second:g} s of an "
        f"instance at ${instance_hour:g}/h |",
        f"| saved: endpoint data processed (every hit) | ${data:.3f} | {text_bytes:.0f} bytes in + out per text |",
        f"| **hit ratio above which the cache saves money** | **{break_even:.0%}** | (lookup + write + storage) / "
        "(saved + write + storage) |",
        "",
        "Not in these figures: the pipeline requests a hit avoids or adds (sections 1 and 2: they depend on the "
        "path), Lambda time, and an instance start that a fully cached burst or job may avoid on an endpoint "
        "scaled to zero.",
        "",
    ]


def render(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, wall: float, revision: str, finished: str = ""
) -> str:
    off, on = results["off"], results["on"]
    device = "GPU (CUDA, picked by the model server)" if shutil.which("nvidia-smi") else "CPU model server"
    a_off, a_on = off["repeats"], on["repeats"]
    inputs_ratio = _ratio(a_on["endpoint_inputs"], a_off["endpoint_inputs"])
    b_off, b_on = off["latency"], on["latency"]
    latency_ratio = _ratio(b_on["again"]["p50"], b_off["again"]["p50"])
    latency_ratio_fresh = _ratio(b_on["again"]["p50"], b_on["first"]["p50"])
    c_off, c_on = off["no_repeats"], on["no_repeats"]
    per_off = sum(c_off["requests"].values()) / c_off["predictions"]
    per_on = sum(c_on["requests"].values()) / c_on["predictions"]
    delta = per_on - per_off
    sweeper_off, sweeper_on = c_off["by_function"].get("Sweeper", 0), c_on["by_function"].get("Sweeper", 0)
    delta_no_sweeper = (sum(c_on["requests"].values()) - sweeper_on) / c_on["predictions"] - (
        sum(c_off["requests"].values()) - sweeper_off
    ) / c_off["predictions"]
    busy_jobs = {name: r["other_load"].get("D", 0.0) for name, r in (("off", off), ("on", on))}
    j_off, j_on = off["jobs"], on["jobs"]
    job_ratio = _ratio(j_on[1]["invocations"], j_on[0]["invocations"])
    lines = j_on[0]["lines"]

    def params(r: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in r["parameters"].items())

    out = [
        "# Result cache on the local stack",
        "",
        f"Run {finished or f'{datetime.now(UTC):%Y-%m-%d %H:%M}'} UTC on {os.cpu_count()} cores ({cpu_model()}), {device}; "
        f"`python -m bench.cache{' ' + ' '.join(args.argv) if args.argv else ''}` took {wall / 60:.1f} min; "
        f"{revision}.",
        "",
        f"Two local stacks, one after the other, each in its own process, the same phases and texts: **cache off** "
        f"({params(off)}) and **cache on** ({params(on)}). Environment the functions got: off "
        f"{off['cache_env'] or '(no *CACHE* variables)'}, on {on['cache_env'] or '(no *CACHE* variables)'}. "
        "Event pumps: 5 pollers per function; sweeper every 10 s. "
        + "The local stack's moto DynamoDB runs one request at a time with atomic transactions "
        "(local_stack/moto_fixes.py). Bench parameters: "
        f"--predictions {args.predictions} --wave {args.wave} --repeat-share {args.repeat_share} "
        f"--samples {args.samples} --no-repeat {args.no_repeat} --lines {args.lines} --concurrency {args.concurrency}"
        f" --scope {args.scope}.",
        "",
        "All texts are short (bench/corpus.py's texts of 3 to 12 words), distinct unless the workload repeats them "
        "on purpose, and the same in both stacks. The model server, moto, the API, the pumps and the local endpoint "
        "share this machine's cores, so times are this machine's; the counts are exact and machine-independent.",
        "",
        "## Targets",
        "",
        "| # | measurement | cache off | cache on | value | target | |",
        "|---|---|---:|---:|---:|---:|---|",
        f"| 1 | inputs sent to the endpoint, {a_on['predictions']} single-text predictions, "
        f"{a_on['repeats'] / a_on['predictions']:.0%} repeats | {a_off['endpoint_inputs']} | "
        f"{a_on['endpoint_inputs']} | **{inputs_ratio:.2f}x** | <= {INPUTS_TARGET}x | "
        f"{met(inputs_ratio <= INPUTS_TARGET)} |",
        f"| 2 | p50 submit -> succeeded, `Prefer: wait=20`, {b_on['again']['samples']} texts sent a second time "
        f"(cache on: all cached) | {b_off['again']['p50']:.3f} s | {b_on['again']['p50']:.3f} s | "
        f"**{latency_ratio:.2f}x** | <= {LATENCY_TARGET}x | {met(latency_ratio <= LATENCY_TARGET)} |",
        f"| 3 | AWS requests per prediction, {c_on['predictions']} predictions, no repeats (submit, process, one "
        f"GET) | {per_off:.3f} | {per_on:.3f} | **{delta:+.3f}** ({delta_no_sweeper:+.3f} without the local "
        f"sweeper's requests) | <= +{REQUESTS_TARGET} | "
        f"{met(delta <= REQUESTS_TARGET)} |",
        f"| 4 | endpoint invocations, 2nd run / 1st run of the same {lines:,}-line job | "
        f"{j_off[1]['invocations']} / {j_off[0]['invocations']} | {j_on[1]['invocations']} / "
        f"{j_on[0]['invocations']} | **{job_ratio:.1%}** | <= {JOB_TARGET:.0%} | {met(job_ratio <= JOB_TARGET)} |",
        "",
        "## 1. Endpoint inputs with 50% repeats",
        "",
        f"A search-box-like sequence: {a_on['predictions']} single-text predictions, fire-and-forget "
        f"(POST without `Prefer`, {args.concurrency} clients at once), in {a_on['waves']} waves of {args.wave}. "
        f"Each wave is sent once the previous wave has finished (read from DynamoDB) plus {WAVE_GAP:g} s. The first "
        "wave holds only new texts; each later wave mixes new texts with repeats of texts of earlier waves, the "
        f"repeats spread evenly over the later waves ({a_on['repeats']} repeats in all, "
        f"{a_on['repeats'] / a_on['predictions']:.0%}), drawn with a Zipf-like popularity (weight 1/rank^0.8): "
        f"{a_on['repeated_texts']} distinct texts repeated, the most popular {a_on['most_repeated']} times. A "
        "perfect cache sends each distinct text once: "
        f"{a_on['predictions'] - a_on['repeats']} inputs, {(a_on['predictions'] - a_on['repeats']) / a_on['predictions']:.2f}x.",
        "",
        "| | cache off | cache on |",
        "|---|---:|---:|",
        f"| inputs submitted | {a_off['submitted_inputs']} | {a_on['submitted_inputs']} |",
        f"| inputs sent to the endpoint (counted in the batch input objects) | {a_off['endpoint_inputs']} | "
        f"{a_on['endpoint_inputs']} |",
        f"| endpoint invocations | {a_off['invocations']} | {a_on['invocations']} |",
        f"| hit ratio: 1 - inputs in distinct batch objects / inputs submitted | "
        f"{1 - a_off['distinct_inputs'] / a_off['submitted_inputs']:.1%} | "
        f"{1 - a_on['distinct_inputs'] / a_on['submitted_inputs']:.1%} |",
        f"| of the repeats, served from the cache | | "
        f"{(a_on['submitted_inputs'] - a_on['endpoint_inputs']) / max(a_on['repeats'], 1):.1%} |",
        *(
            f"| p50 {part} (status records), {kind} | {a_off[key][stat]:.2f} s | {a_on[key][stat]:.2f} s |"
            for key, kind in (("fresh", "new texts"), ("repeat", "repeats"))
            for stat, part in (
                ("total_p50", "created -> succeeded"),
                ("queue_p50", "created -> started"),
                ("run_p50", "started -> succeeded"),
            )
        ),
        f"| records without started_at (finished without a batch), repeats | {a_off['repeat']['without_started']} | "
        f"{a_on['repeat']['without_started']} |",
        f"| p50 wave time (submit -> all finished) | {a_off['wave_p50']:.2f} s | {a_on['wave_p50']:.2f} s |",
        f"| the cache's own requests per prediction (naming only cache entries) | {_own(a_off, a_off['predictions'])} "
        f"| {_own(a_on, a_on['predictions'])} |",
        f"| cache metrics emitted | {_cache_metrics(a_off)} | {_cache_metrics(a_on)} |",
        "",
        "AWS requests per prediction, by operation:",
        "",
        *_ops_table([("cache off", a_off, a_off["predictions"]), ("cache on", a_on, a_on["predictions"])]),
        "",
        "## 2. `Prefer: wait=20` when every input is cached",
        "",
        f"{b_on['first']['samples']} new texts, one prediction at a time (POST with `Prefer: wait=20`, polling "
        "GET every 0.1 s if the reply is a 202), then the same texts again in the same order. Latency is the "
        "client's round trip, submit -> succeeded.",
        "",
        "| | cache off, 1st pass | cache off, 2nd pass | cache on, 1st pass (new) | cache on, 2nd pass (cached) |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [
        ("p50 s", "p50", "{:.3f}"),
        ("p90 s", "p90", "{:.3f}"),
        ("mean s", "mean", "{:.3f}"),
        ("answered `succeeded` in the POST reply", "answered_at_submit", "{}"),
        ("p50 metrics.queue_ms", "queue_ms_p50", "{:.0f}"),
        ("endpoint invocations", "invocations", "{}"),
        ("inputs sent to the endpoint", "endpoint_inputs", "{}"),
    ]
    cells = [b_off["first"], b_off["again"], b_on["first"], b_on["again"]]
    for label, key, fmt in rows:
        out.append(f"| {label} | " + " | ".join(fmt.format(c[key]) for c in cells) + " |")
    out.append("| the cache's own requests per prediction | " + " | ".join(_own(c, c["samples"]) for c in cells) + " |")
    out += [
        "",
        "AWS requests per prediction, by operation:",
        "",
        *_ops_table(
            [
                (label, cell, cell["samples"])
                for label, cell in zip(
                    ("off, 1st", "off, 2nd", "on, 1st (new)", "on, 2nd (cached)"), cells, strict=True
                )
            ]
        ),
        "",
        f"Cached 2nd pass / cache-on 1st pass (the same texts new): **{latency_ratio_fresh:.2f}x**. Largest "
        f"difference between a text's embedding in the 2nd pass and in the 1st: off "
        f"{b_off['again']['max_diff_vs_first']:.2g}, on {b_on['again']['max_diff_vs_first']:.2g}. Cache metrics, "
        f"cache on: 1st pass {_cache_metrics(b_on['first'])}; 2nd pass {_cache_metrics(b_on['again'])}.",
        "",
        "## 3. AWS requests per prediction without repeats",
        "",
        f"{c_on['predictions']} predictions of new texts, submitted at once by {args.concurrency} clients "
        "(fire-and-forget), waited for, then each read once with GET /v1/predictions/{id}. Counted: every request "
        "the product's clients (API and functions, in this process) sent in that window, including the sweeper's "
        "(every 10 s here). Not counted: the pumps' ReceiveMessage/DeleteMessageBatch, the endpoint's own S3 and "
        "SNS calls, the harness's reads.",
        "",
        "| service.operation | cache off | cache on | per prediction, off | per prediction, on |",
        "|---|---:|---:|---:|---:|",
    ]
    for operation in sorted(set(c_off["requests"]) | set(c_on["requests"])):
        n_off, n_on = c_off["requests"].get(operation, 0), c_on["requests"].get(operation, 0)
        out.append(
            f"| {operation} | {n_off} | {n_on} | {n_off / c_off['predictions']:.3f} | "
            f"{n_on / c_on['predictions']:.3f} |"
        )
    out += [
        f"| **all** | {sum(c_off['requests'].values())} | {sum(c_on['requests'].values())} | **{per_off:.3f}** | "
        f"**{per_on:.3f}** |",
        "",
        f"Endpoint invocations: off {c_off['invocations']} (mean batch {c_off['endpoint_inputs'] / max(c_off['invocations'], 1):.1f} "
        f"inputs), on {c_on['invocations']} (mean batch {c_on['endpoint_inputs'] / max(c_on['invocations'], 1):.1f}); batch "
        "sizes depend on arrival timing, and per-batch requests move with them. By function: off "
        + ", ".join(f"{k} {v}" for k, v in sorted(c_off["by_function"].items()))
        + "; on "
        + ", ".join(f"{k} {v}" for k, v in sorted(c_on["by_function"].items()))
        + ". The cache's own requests (naming only cache entries) per prediction: off "
        f"{_own(c_off, c_off['predictions'])}; on **{_own(c_on, c_on['predictions'])}**. The rest of the difference "
        "comes with the number of batches and with the sweeper's runs that fell in the window (every 10 s here, "
        f"every 5 minutes on AWS: {sweeper_off} requests off, {sweeper_on} on; without them the difference is "
        f"{delta_no_sweeper:+.3f} per prediction). "
        f"The write-back was {c_on['requests'].get('dynamodb.BatchWriteItem', 0) / max(c_on['invocations'], 1):.2f} "
        "BatchWriteItem per batch (25 entries a request at most), so its cost per prediction is about 1 / the mean "
        f"batch size: {c_on['endpoint_inputs'] / max(c_on['invocations'], 1):.1f} texts here, where full batches of "
        f"DispatchBatchSize={on['parameters'].get('DispatchBatchSize')} would make it "
        f"{math.ceil(int(on['parameters'].get('DispatchBatchSize', 50)) / 25)}/"
        f"{on['parameters'].get('DispatchBatchSize')}. p50 created -> succeeded (created -> started, started -> succeeded): off "
        f"{c_off['timings']['total_p50']:.2f} s ({c_off['timings']['queue_p50']:.2f}, "
        f"{c_off['timings']['run_p50']:.2f}), on {c_on['timings']['total_p50']:.2f} s "
        f"({c_on['timings']['queue_p50']:.2f}, {c_on['timings']['run_p50']:.2f}). "
        f"Cache metrics, cache on: {_cache_metrics(c_on)}.",
        "",
        f"## 4. The same {lines:,}-line job twice",
        "",
        "POST /v1/jobs, then PUT of the same JSONL file (one short text per line, the same `custom_id`s) to the "
        "upload link, once the previous run has completed (+2 s). Wall time: the PUT -> the job record's "
        "`completed_at`.",
        "",
        "| | off, run 1 | off, run 2 | on, run 1 | on, run 2 |",
        "|---|---:|---:|---:|---:|",
    ]
    jobs = [j_off[0], j_off[1], j_on[0], j_on[1]]
    job_rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("wall time s", lambda j: f"{j['wall_seconds']:.1f}"),
        ("lines completed / failed", lambda j: f"{j['completed']} / {j['failed']}"),
        ("chunks", lambda j: str(j["chunks"])),
        ("endpoint invocations", lambda j: str(j["invocations"])),
        (
            "chunks invoked more than once",
            lambda j: ", ".join(i.rsplit("-", 1)[-1] for i in j["invoked_again"]) or "none",
        ),
        ("inputs sent to the endpoint", lambda j: f"{j['endpoint_inputs']:,}"),
        (
            "inputs in distinct chunk objects (a chunk invoked again counted once)",
            lambda j: f"{j['distinct_inputs']:,}",
        ),
        ("hit ratio: 1 - inputs in distinct objects / lines", lambda j: f"{1 - j['distinct_inputs'] / j['lines']:.1%}"),
        ("AWS requests per line (all, sweeper included)", lambda j: f"{j['requests_per_line']:.4f}"),
        ("AWS requests per line without the sweeper", lambda j: f"{j['requests_per_line_no_sweeper']:.4f}"),
        ("dynamodb.BatchGetItem", lambda j: str(j["requests"].get("dynamodb.BatchGetItem", 0))),
        ("dynamodb.BatchWriteItem", lambda j: str(j["requests"].get("dynamodb.BatchWriteItem", 0))),
        ("s3.PutObject", lambda j: str(j["requests"].get("s3.PutObject", 0))),
        ("s3.GetObject", lambda j: str(j["requests"].get("s3.GetObject", 0))),
        *(
            (
                f"mean ms per {operation}",
                (
                    lambda j, operation=operation: (
                        f"{1000 * j['request_seconds'].get(operation, 0) / j['requests'][operation]:.0f}"
                        if j["requests"].get(operation)
                        else "-"
                    )
                ),
            )
            for operation in (
                "dynamodb.TransactWriteItems",
                "dynamodb.BatchWriteItem",
                "dynamodb.BatchGetItem",
                "dynamodb.Query",
            )
        ),
        ("the cache's own requests per line", lambda j: f"{sum(j['cache_only'].values()) / j['lines']:.4f}"),
        (
            "cache entries written; DynamoDB write units per line",
            lambda j: (
                f"{j['cache_writes'].get('entries', 0):,}; {j['cache_writes'].get('write_units', 0) / j['lines']:.2f}"
            ),
        ),
    ]
    for label, cell in job_rows:
        out.append(f"| {label} | " + " | ".join(cell(j) for j in jobs) + " |")
    out += [
        "",
        (
            "**Compare wall times within a stack**: other processes used "
            + ", ".join(
                f"{share:.0%} of the CPU during the {name} stack's job runs" for name, share in busy_jobs.items()
            )
            + ". "
            if max(busy_jobs.values()) > 0.1
            else ""
        )
        + f"2nd run / 1st run wall time: off {_ratio(j_off[1]['wall_seconds'], j_off[0]['wall_seconds']):.2f}x, on "
        f"**{_ratio(j_on[1]['wall_seconds'], j_on[0]['wall_seconds']):.2f}x**. The first {j_on[1]['compared_lines']} "
        f"output lines of the 2nd run match the 1st's (same `custom_id`, same vector): off "
        f"{j_off[1]['same_output_lines']}, on {j_on[1]['same_output_lines']}. For reference, bench/jobs.py's target "
        f"is <= {JOB_REQUESTS_PER_LINE} AWS requests per line. Cache metrics, cache on: run 1 "
        f"{_cache_metrics(j_on[0])}; run 2 {_cache_metrics(j_on[1])}.",
        "",
        "## Hit ratio and the product's cache metrics, cache on",
        "",
        "Hit ratio = 1 - inputs in the distinct batch (or chunk) objects sent to the endpoint / inputs submitted, per "
        "phase (an input submitted twice counts twice; an object invoked again counts once). Metrics: every `metrics.add_metric` the product made in the phase whose name mentions "
        "Cache, Hit, Miss, Saved or AnsweredAtSubmit, summed (CacheHitRatio, a percent per lookup, averaged).",
        "",
        "| phase | inputs submitted | sent to the endpoint (distinct objects) | hit ratio | metrics |",
        "|---|---:|---:|---:|---|",
    ]
    phases = [
        ("3: no repeats", c_on),
        ("1: 50% repeats", a_on),
        ("2: 1st pass (new)", b_on["first"]),
        ("2: 2nd pass (cached)", b_on["again"]),
        ("4: job run 1", j_on[0]),
        ("4: job run 2", j_on[1]),
    ]
    for label, phase in phases:
        submitted = phase["submitted_inputs"]
        out.append(
            f"| {label} | {submitted:,} | {phase['endpoint_inputs']:,} ({phase['distinct_inputs']:,}) | "
            f"{1 - phase['distinct_inputs'] / max(submitted, 1):.1%} | {_cache_metrics(phase)} |"
        )
    all_metrics = sorted({name for phase in (a_on, c_on, j_on[0], j_on[1]) for name in phase["metrics"]})
    out += [
        "",
        "All metric names the product emitted in those phases: " + (", ".join(all_metrics) or "none") + ".",
        "",
        *cost_section(on),
        "## Contract checks",
        "",
        "One prediction each (`Prefer: wait=20`), on texts that section 2 already sent (cached where the cache is "
        "on); the endpoint inputs are those of that one prediction. The cache-off column is the control: every "
        "input goes to the endpoint there.",
        "",
        "| check | expected endpoint inputs, cache on | off: inputs | off: result | on: inputs | on: result |",
        "|---|---|---:|---|---:|---|",
    ]
    for k_off, k_on in zip(off["checks"], on["checks"], strict=True):
        out.append(
            f"| {k_on['name']} | {k_on['expected']} | {k_off['endpoint_inputs']} | {k_off['code']} "
            f"{k_off['status']}, {k_off['correct']} | {k_on['endpoint_inputs']} | {k_on['code']} {k_on['status']}, "
            f"{k_on['correct']} |"
        )
    unreadable = sum(
        p["unreadable_inputs"]
        for r in (off, on)
        for p in (r["repeats"], r["no_repeats"], r["latency"]["first"], r["latency"]["again"], *r["jobs"])
    )
    out += [
        "",
        "## Other load on the machine",
        "",
        "Share of the machine's CPU used by processes other than this benchmark's, per phase (from /proc; "
        "anything above a few percent makes the times noisier): off "
        + ", ".join(f"{k} {v:.0%}" for k, v in off["other_load"].items())
        + "; on "
        + ", ".join(f"{k} {v:.0%}" for k, v in on["other_load"].items())
        + f". Phases took {off['seconds'] / 60:.1f} min (off) and {on['seconds'] / 60:.1f} min (on) after each "
        f"stack's start. Batch input objects that could not be read back: {unreadable}.",
        "",
    ]
    return "\n".join(out)


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
        publish(report, args.output)
        return 0
    args.argv = [a for a in raw if a != "--raw" and not (args.raw and a == str(args.raw))]
    started = time.monotonic()
    try:
        revision = describe("new", REPO, "HEAD")
    except (OSError, subprocess.CalledProcessError):
        revision = "revision unknown (not a git checkout)"
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for config in CONFIGS:
            log(f"cache {config}: starting a local stack ...")
            result_file = Path(scratch) / f"{config}.json"
            child = subprocess.run(
                [sys.executable, "-m", "bench.cache", *args.argv, "--child", config, "--result-file", str(result_file)],
                check=False,
            )
            if child.returncode != 0:
                log(f"cache {config}: the child failed ({child.returncode})")
                return child.returncode
            results[config] = json.loads(result_file.read_text())
    wall = time.monotonic() - started
    if args.raw:
        finished = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
        args.raw.write_text(
            json.dumps(
                {"results": results, "wall": wall, "revision": revision, "argv": args.argv, "finished": finished}
            )
        )
    report = render(results, args, wall, revision)
    publish(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
