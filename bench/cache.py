"""Result-cache benchmark on the local stack: the same workloads on a stack with the cache off and one with it on.

    python -m bench.cache [--lines 20000] [--predictions 400] [--wave 50] [--repeat-share 0.5] [--samples 30]
                          [--no-repeat 300] [--concurrency 8] [--scope tenant|shared]

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
client. Writes bench/results/cache.md and prints it.
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
from bench.cost import REPO, _describe
from bench.jobs import (
    Meter,
    Tenant,
    cpu_model,
    cpu_snapshot,
    finish_job,
    other_load,
    submit_job,
)
from bench.pipeline import SERVICES, TERMINAL, percentile
from local_stack.runner import LocalStack, Options, free_port

CONFIGS = ("off", "on")
INPUTS_TARGET = 0.55  # endpoint inputs, cache on / cache off, 50% repeats
LATENCY_TARGET = 0.5  # p50 round trip, all inputs cached / uncached
REQUESTS_TARGET = 0.1  # extra AWS requests per prediction with the cache on, no repeats
JOB_TARGET = 0.05  # endpoint invocations of the second run of a job / the first
JOB_REQUESTS_PER_LINE = 0.05  # bench/jobs.py's target, for reference
WAVE_GAP = 1.0  # seconds between a wave's last prediction finishing and the next wave
COMPARE_LINES = 200  # job output lines compared between the two runs
PARAMETERS = (
    "ResultCacheScope",
    "ResultCacheTtlHours",
    "DispatchBatchSize",
    "DispatchBatchingWindowSeconds",
    "JobChunkMaxInputs",
    "JobMaxInFlightChunks",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


# ---------------------------------------------------------------- counting


@dataclass
class CacheMeter(Meter):
    """bench/jobs.py's Meter (requests by phase, owner, function, operation), plus the InputLocation of every
    endpoint invocation and the metrics the product emits, by phase."""

    locations: list[tuple[str, str]] = field(default_factory=list)  # (phase, InputLocation)
    metric_sums: dict[tuple[str, str], float] = field(default_factory=dict)  # (phase, metric) -> sum of values

    def on_params(self, params: dict[str, Any], context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_params(params, context, **kwargs)
        if self.phase is not None and context is not None and "InputLocation" in params:
            context["bench_input_location"] = params["InputLocation"]

    def on_call(self, model: Any, context: dict[str, Any] | None, **kwargs: Any) -> None:
        super().on_call(model, context, **kwargs)
        location = (context or {}).get("bench_input_location")
        phase = self.phase
        if phase is not None and location:
            with self.lock:
                self.locations.append((phase, str(location)))

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
                    key = (phase, str(name))
                    self.metric_sums[key] = self.metric_sums.get(key, 0.0) + float(value)
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

    def metrics_of(self, phase: str) -> dict[str, float]:
        return {name: value for (p, name), value in sorted(self.metric_sums.items()) if p == phase}


def endpoint_inputs(s3: Any, locations: list[str]) -> tuple[int, int]:
    """(texts in the batch input objects at these locations, objects that could not be read)."""
    texts = unreadable = 0
    for location in locations:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:  # reported as unreadable
            unreadable += 1
            continue
        for line in body.splitlines():
            if line.strip():
                inputs = json.loads(line).get("inputs")
                texts += len(inputs) if isinstance(inputs, list) else 1
    return texts, unreadable


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
        inputs, unreadable = endpoint_inputs(self.s3, locations)
        requests = self.meter.requests(self.name)
        return {
            "seconds": time.monotonic() - self.started,
            "submitted_inputs": submitted_inputs,
            "invocations": requests.get("sagemaker-runtime.InvokeEndpointAsync", 0),
            "endpoint_inputs": inputs,
            "unreadable_inputs": unreadable,
            "requests": dict(requests),
            "by_function": dict(self.meter.by_function(self.name)),
            "metrics": self.meter.metrics_of(self.name),
        }


# ---------------------------------------------------------------- predictions


def records(ddb: Any, table: str, ids: list[str]) -> dict[str, dict[str, str]]:
    """Finished status records, read straight from DynamoDB (uncounted), 100 at a time."""
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


def wait_finished(ddb: Any, table: str, ids: list[str], timeout: float = 600) -> dict[str, dict[str, str]]:
    done: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(done)} of {len(ids)} predictions unfinished after {timeout:.0f} s")
        done.update(records(ddb, table, [i for i in ids if i not in done]))
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
    result["record_p50"] = percentile([record_seconds(r) for r in done.values()], 50)
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
    latency: dict[bool, list[float]] = {True: [], False: []}
    wave_seconds: list[float] = []
    with Phase(meter, s3, "A 50% repeats") as phase:
        for index, wave in enumerate(waves):
            started = time.monotonic()
            ids = submit_all(api, [{"inputs": text} for text, _ in wave], concurrency)
            done = wait_finished(ddb, table, ids)
            wave_seconds.append(time.monotonic() - started)
            for prediction_id, (_, repeat) in zip(ids, wave, strict=True):
                latency[repeat].append(record_seconds(done[prediction_id]))
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
        fresh_p50=percentile(latency[False], 50),
        repeat_p50=percentile(latency[True], 50) if latency[True] else float("nan"),
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
    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(
            Options(
                api_port=free_port("127.0.0.1"), state_dir=Path(state), parameters=parameters, pollers_per_function=5
            )
        )
        stack.start()
        try:
            # Imported once the stack has set the functions' environment, which the settings read.
            from inference_core.dal.clients import client
            from inference_core.logic.auth import create_api_key

            meter = CacheMeter()
            for service in SERVICES:
                meter.register(client(service).meta.events)
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
            key_a = (Path(state) / "api-key").read_text().strip()
            key_b, _ = create_api_key("bench-tenant-b", "bench.cache")
            url = stack.urls["api"]
            with (
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_a}"}, timeout=60) as a,
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key_b}"}, timeout=60) as b,
            ):
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
        finally:
            stack.stop()
    return results


# ---------------------------------------------------------------- the report


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def _cache_metrics(phase: dict[str, Any]) -> str:
    found = {
        name: value
        for name, value in phase["metrics"].items()
        if any(word in name for word in ("Cache", "Hit", "Miss", "Saved"))
    }
    return ", ".join(f"{name} {value:g}" for name, value in found.items()) or "none emitted"


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, wall: float, revision: str) -> str:
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
    j_off, j_on = off["jobs"], on["jobs"]
    job_ratio = _ratio(j_on[1]["invocations"], j_on[0]["invocations"])
    lines = j_on[0]["lines"]

    def params(r: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in r["parameters"].items())

    out = [
        "# Result cache on the local stack",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu_model()}), {device}; "
        f"`python -m bench.cache{' ' + ' '.join(args.argv) if args.argv else ''}` took {wall / 60:.1f} min; "
        f"{revision}.",
        "",
        f"Two local stacks, one after the other, each in its own process, the same phases and texts: **cache off** "
        f"({params(off)}) and **cache on** ({params(on)}). Environment the functions got: off "
        f"{off['cache_env'] or '(no *CACHE* variables)'}, on {on['cache_env'] or '(no *CACHE* variables)'}. "
        "Event pumps: 5 pollers per function; sweeper every 10 s. Bench parameters: "
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
        f"{_met(inputs_ratio <= INPUTS_TARGET)} |",
        f"| 2 | p50 submit -> succeeded, `Prefer: wait=20`, {b_on['again']['samples']} texts sent a second time "
        f"(cache on: all cached) | {b_off['again']['p50']:.3f} s | {b_on['again']['p50']:.3f} s | "
        f"**{latency_ratio:.2f}x** | <= {LATENCY_TARGET}x | {_met(latency_ratio <= LATENCY_TARGET)} |",
        f"| 3 | AWS requests per prediction, {c_on['predictions']} predictions, no repeats (submit, process, one "
        f"GET) | {per_off:.3f} | {per_on:.3f} | **{delta:+.3f}** | <= +{REQUESTS_TARGET} | "
        f"{_met(delta <= REQUESTS_TARGET)} |",
        f"| 4 | endpoint invocations, 2nd run / 1st run of the same {lines:,}-line job | "
        f"{j_off[1]['invocations']} / {j_off[0]['invocations']} | {j_on[1]['invocations']} / "
        f"{j_on[0]['invocations']} | **{job_ratio:.1%}** | <= {JOB_TARGET:.0%} | {_met(job_ratio <= JOB_TARGET)} |",
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
        f"| hit ratio: 1 - endpoint inputs / inputs submitted | "
        f"{1 - a_off['endpoint_inputs'] / a_off['submitted_inputs']:.1%} | "
        f"{1 - a_on['endpoint_inputs'] / a_on['submitted_inputs']:.1%} |",
        f"| of the repeats, served from the cache | | "
        f"{(a_on['submitted_inputs'] - a_on['endpoint_inputs']) / max(a_on['repeats'], 1):.1%} |",
        f"| p50 created -> succeeded (status records), new texts | {a_off['fresh_p50']:.2f} s | "
        f"{a_on['fresh_p50']:.2f} s |",
        f"| p50 created -> succeeded, repeats | {a_off['repeat_p50']:.2f} s | {a_on['repeat_p50']:.2f} s |",
        f"| p50 wave time (submit -> all finished) | {a_off['wave_p50']:.2f} s | {a_on['wave_p50']:.2f} s |",
        f"| AWS requests per prediction | {sum(a_off['requests'].values()) / a_off['predictions']:.3f} | "
        f"{sum(a_on['requests'].values()) / a_on['predictions']:.3f} |",
        f"| cache metrics emitted | {_cache_metrics(a_off)} | {_cache_metrics(a_on)} |",
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
    out.append("| SQS SendMessage | " + " | ".join(str(c["requests"].get("sqs.SendMessage", 0)) for c in cells) + " |")
    out.append(
        "| AWS requests per prediction | "
        + " | ".join(f"{sum(c['requests'].values()) / c['samples']:.2f}" for c in cells)
        + " |"
    )
    out += [
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
        + f". p50 created -> succeeded: off {c_off['record_p50']:.2f} s, on {c_on['record_p50']:.2f} s. "
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
        ("inputs sent to the endpoint", lambda j: f"{j['endpoint_inputs']:,}"),
        ("hit ratio: 1 - endpoint inputs / lines", lambda j: f"{1 - j['endpoint_inputs'] / j['lines']:.1%}"),
        ("AWS requests per line (all, sweeper included)", lambda j: f"{j['requests_per_line']:.4f}"),
        ("AWS requests per line without the sweeper", lambda j: f"{j['requests_per_line_no_sweeper']:.4f}"),
        ("dynamodb.BatchGetItem", lambda j: str(j["requests"].get("dynamodb.BatchGetItem", 0))),
        ("dynamodb.BatchWriteItem", lambda j: str(j["requests"].get("dynamodb.BatchWriteItem", 0))),
        ("s3.PutObject", lambda j: str(j["requests"].get("s3.PutObject", 0))),
        ("s3.GetObject", lambda j: str(j["requests"].get("s3.GetObject", 0))),
    ]
    for label, cell in job_rows:
        out.append(f"| {label} | " + " | ".join(cell(j) for j in jobs) + " |")
    out += [
        "",
        f"2nd run / 1st run wall time: off {_ratio(j_off[1]['wall_seconds'], j_off[0]['wall_seconds']):.2f}x, on "
        f"**{_ratio(j_on[1]['wall_seconds'], j_on[0]['wall_seconds']):.2f}x**. The first {j_on[1]['compared_lines']} "
        f"output lines of the 2nd run match the 1st's (same `custom_id`, same vector): off "
        f"{j_off[1]['same_output_lines']}, on {j_on[1]['same_output_lines']}. For reference, bench/jobs.py's target "
        f"is <= {JOB_REQUESTS_PER_LINE} AWS requests per line. Cache metrics, cache on: run 1 "
        f"{_cache_metrics(j_on[0])}; run 2 {_cache_metrics(j_on[1])}.",
        "",
        "## Hit ratio and the product's cache metrics, cache on",
        "",
        "Hit ratio = 1 - inputs sent to the endpoint / inputs submitted, per phase (a prediction sent twice "
        "counts twice). Metrics: every `metrics.add_metric` the product made in the phase whose name mentions "
        "Cache, Hit, Miss or Saved, summed.",
        "",
        "| phase | inputs submitted | sent to the endpoint | hit ratio | metrics |",
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
            f"| {label} | {submitted:,} | {phase['endpoint_inputs']:,} | "
            f"{1 - phase['endpoint_inputs'] / max(submitted, 1):.1%} | {_cache_metrics(phase)} |"
        )
    all_metrics = sorted({name for phase in (a_on, c_on, j_on[0], j_on[1]) for name in phase["metrics"]})
    out += [
        "",
        "All metric names the product emitted in those phases: " + (", ".join(all_metrics) or "none") + ".",
        "",
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
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.child:
        with contextlib.redirect_stdout(sys.stderr):  # the functions' metric lines (EMF) are not the report
            result = run_config(args.child, args)
        args.result_file.write_text(json.dumps(result))
        return 0
    args.argv = raw
    started = time.monotonic()
    try:
        revision = _describe("new", REPO, "HEAD")
    except (OSError, subprocess.CalledProcessError):
        revision = "revision unknown (not a git checkout)"
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for config in CONFIGS:
            log(f"cache {config}: starting a local stack ...")
            result_file = Path(scratch) / f"{config}.json"
            child = subprocess.run(
                [sys.executable, "-m", "bench.cache", *raw, "--child", config, "--result-file", str(result_file)],
                check=False,
            )
            if child.returncode != 0:
                log(f"cache {config}: the child failed ({child.returncode})")
                return child.returncode
            results[config] = json.loads(result_file.read_text())
    report = render(results, args, time.monotonic() - started, revision)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
