"""Client benchmark on the local stack: a plain httpx loop vs `inference_client`, clean and under injected 429/503s.

    python -m bench.client [--texts 300] [--sequential-texts 40] [--concurrency 16] [--seed 7]

Starts its own local stacks (`python -m local_stack` in a child process, so stack and clients do not share a GIL;
a fresh one per mode, because moto copies the whole DynamoDB table on every transaction, so a table filled by one
mode would slow the next) and embeds the same seeded corpus (bench/corpus.py) in three ways:

1. plain loop: what a user without the client writes: for each text, one `POST /v1/predictions` with
   `Prefer: wait=20`, then `GET` every 0.5 s until it is done; one text at a time. It runs on the first
   `--sequential-texts` texts (about 1.6 s a text here: the dispatcher's 1 s batching window is paid once per
   text); its wall time for all `--texts` is projected from its measured rate, and says so.
2. client, one call per text: `AsyncClient.embed([text])` for every text, `--concurrency` calls at a time
   (asyncio.gather behind a semaphore).
3. client, whole list: `Client.embed(texts)` once (requests of at most 256 inputs, `concurrency=4`, its defaults).

The defaults keep the whole bench under 6 minutes on a 2-core machine; `--texts 1000 --sequential-texts 1000` is
the full comparison (well over half an hour there). HTTP requests are counted on the wire: an httpx event hook for
the plain loop, a wrapping transport for the client (cross-checked against `client.metrics`, which also counts the
retries). Then modes 2 and 3 run again through a transport that answers a fixed, seeded share of requests itself
(429 with `Retry-After: 1`, 503 without, before forwarding) or forwards the request and replaces the reply with a
503 (a reply lost after the server did the work), never more than twice in a row for one request. Each item must
come back exactly once and in order: the vector at index i must be the clean run's vector for text i (within 1e-6,
and nearest to it of all the clean vectors), and the server must have created exactly one prediction per logical
submission (lost replies are answered by Idempotency-Key replays, not new predictions). Exits 1 if any check fails.
Writes bench/results/client.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from inference_client import AsyncClient, Client

from bench import harness
from bench.corpus import corpus
from bench.harness import publish
from local_stack.runner import free_port, read_env_file

TOLERANCE = 1e-6
POLL_SECONDS = 0.5
INJECTED_BY = "injected by bench.client"


def log(message: str) -> None:
    harness.log(message, "client-bench")


# -- the local stack -----------------------------------------------------------------------------------------------


class Stack:
    """`python -m local_stack` in a child process with its own state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = free_port("127.0.0.1")
        self.log_path = state / "stack.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.key = ""

    def start(self, timeout: float = 240) -> None:
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(  # our own interpreter and module
                [sys.executable, "-m", "local_stack", "--port", str(self.port), "--state-dir", str(self.state)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited during startup:\n{self.log_path.read_text()[-3000:]}")
            if (self.state / "env").is_file() and (self.state / "api-key").is_file():
                self.url = read_env_file(self.state / "env")["API_URL"]
                self.key = (self.state / "api-key").read_text().strip()
                try:
                    if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.25)
        raise RuntimeError(f"the local stack did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def prediction_count(self) -> int:
        """How many predictions the tenant has, read through the API's list (not counted in any mode)."""
        with Client(self.url, self.key) as client:
            return sum(1 for _ in client.predictions.iterate(page_size=100))


# -- the wire: counting, and injecting faults ----------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    rate_limited: float = 0.10  # 429 with Retry-After: 1, answered without forwarding
    unavailable: float = 0.10  # 503 without Retry-After, answered without forwarding
    lost: float = 0.05  # forwarded, then the reply is replaced by a 503: the server did the work
    max_in_a_row: int = 2  # faults in a row for one request (method, path, Idempotency-Key), then it goes through


@dataclass
class Wire:
    """Decides per request, in arrival order, from one seeded random stream; counts what goes over the wire."""

    plan: FaultPlan | None = None
    counts: Counter[str] = field(default_factory=Counter)
    post_keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.plan.seed if self.plan else 0)
        self._in_a_row: dict[tuple[str, str, str | None], int] = {}

    def decide(self, request: httpx.Request) -> str:
        key = (request.method, request.url.path, request.headers.get("Idempotency-Key"))
        with self._lock:
            self.counts["requests"] += 1
            if request.method == "POST" and key[2] is not None:
                self.post_keys.add(key[2])
            action = "forward"
            if self.plan is not None:
                draw = self._random.random()  # drawn for every request, so the schedule is fixed by arrival order
                plan = self.plan
                if self._in_a_row.get(key, 0) < plan.max_in_a_row:
                    if draw < plan.rate_limited:
                        action = "429"
                    elif draw < plan.rate_limited + plan.unavailable:
                        action = "503"
                    elif draw < plan.rate_limited + plan.unavailable + plan.lost:
                        action = "lost"
            if action == "forward":
                self._in_a_row.pop(key, None)
            else:
                self._in_a_row[key] = self._in_a_row.get(key, 0) + 1
                self.counts[f"injected {action}"] += 1
                if action == "lost":
                    self.counts[f"lost {request.method}"] += 1
            return action

    def forwarded(self, response: httpx.Response) -> None:
        with self._lock:
            self.counts[f"status {response.status_code}"] += 1
            if response.status_code >= 400:
                self.counts["real errors"] += 1
        self.replayed(response)

    def replayed(self, response: httpx.Response) -> None:
        """Counts the server's Idempotency-Key replays, also in replies that are then lost."""
        if response.headers.get("Idempotent-Replayed") == "true":
            with self._lock:
                self.counts["idempotent replays"] += 1

    def failed(self) -> None:
        with self._lock:
            self.counts["real errors"] += 1
            self.counts["transport errors"] += 1

    @staticmethod
    def injected(action: str, request: httpx.Request) -> httpx.Response:
        if action == "429":
            body = {"error": {"code": "rate_limited", "message": INJECTED_BY, "details": None}}
            return httpx.Response(429, headers={"Retry-After": "1"}, json=body, request=request)
        body = {"error": {"code": "service_unavailable", "message": INJECTED_BY, "details": None}}
        return httpx.Response(503, json=body, request=request)


class WireTransport(httpx.BaseTransport):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        action = self.wire.decide(request)
        if action in ("429", "503"):
            return self.wire.injected(action, request)
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError:
            self.wire.failed()
            raise
        if action == "lost":
            response.read()
            response.close()
            self.wire.replayed(response)
            return self.wire.injected("503", request)
        self.wire.forwarded(response)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncWireTransport(httpx.AsyncBaseTransport):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        action = self.wire.decide(request)
        if action in ("429", "503"):
            return self.wire.injected(action, request)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self.wire.failed()
            raise
        if action == "lost":
            await response.aread()
            await response.aclose()
            self.wire.replayed(response)
            return self.wire.injected("503", request)
        self.wire.forwarded(response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the three ways to embed ---------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    texts: int
    seconds: float
    vectors: np.ndarray
    requests: int  # on the wire
    retries: int = 0
    wire: Counter[str] = field(default_factory=Counter)
    metrics: dict[str, Any] = field(default_factory=dict)
    logical_posts: int = 0
    created: int | None = None  # predictions the server created during the run
    post_ms: dict[str, float] = field(default_factory=dict)  # see post_costs

    @property
    def throughput(self) -> float:
        return self.texts / self.seconds


def plain_loop(url: str, key: str, texts: list[str]) -> Run:
    """One text at a time, the way a user without the client would write it."""
    requests = Counter[str]()

    def count(request: httpx.Request) -> None:
        requests[request.method] += 1

    vectors = []
    started = time.perf_counter()
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, event_hooks={"request": [count]}
    ) as http:
        for text in texts:
            response = http.post("/v1/predictions", json={"inputs": [text]}, headers={"Prefer": "wait=20"})
            response.raise_for_status()
            prediction = response.json()
            while prediction["status"] in ("queued", "running"):
                time.sleep(POLL_SECONDS)
                response = http.get(f"/v1/predictions/{prediction['id']}")
                response.raise_for_status()
                prediction = response.json()
            if prediction["status"] != "succeeded":
                raise RuntimeError(f"prediction {prediction['id']} is {prediction['status']}: {prediction['error']}")
            vectors.append(prediction["output"]["embeddings"][0])
    seconds = time.perf_counter() - started
    return Run(
        "plain httpx loop, one text at a time",
        len(texts),
        seconds,
        np.array(vectors, dtype=np.float64),
        requests=sum(requests.values()),
        wire=Counter({f"{m} requests": n for m, n in requests.items()}),
        logical_posts=requests["POST"],
    )


def _client_run(
    name: str, texts: list[str], seconds: float, vectors: list[list[float]], wire: Wire, metrics: Any
) -> Run:
    snapshot = metrics.snapshot()
    if snapshot["requests"] != wire.counts["requests"]:
        raise AssertionError(f"client metrics say {snapshot['requests']} requests, the wire {wire.counts['requests']}")
    return Run(
        name,
        len(texts),
        seconds,
        np.array(vectors, dtype=np.float64),
        requests=wire.counts["requests"],
        retries=snapshot["retries"],
        wire=wire.counts,
        metrics=snapshot,
        logical_posts=len(wire.post_keys),
    )


def client_singles(url: str, key: str, texts: list[str], concurrency: int, plan: FaultPlan | None) -> Run:
    """`AsyncClient.embed([text])` per text, `concurrency` calls at a time."""
    wire = Wire(plan)

    async def go() -> tuple[float, list[list[float]], Any]:
        async with AsyncClient(url, key, transport=AsyncWireTransport(wire)) as client:
            slots = asyncio.Semaphore(concurrency)

            async def one(text: str) -> list[float]:
                async with slots:
                    vectors = await client.embed([text])
                if len(vectors) != 1:
                    raise AssertionError(f"embed([text]) returned {len(vectors)} vectors")
                return vectors[0]

            started = time.perf_counter()
            vectors = await asyncio.gather(*(one(text) for text in texts))
            return time.perf_counter() - started, vectors, client.metrics

    seconds, vectors, metrics = asyncio.run(go())
    return _client_run(
        f"client: {len(texts):,} `embed([text])` calls, {concurrency} at a time", texts, seconds, vectors, wire, metrics
    )


def client_whole_list(url: str, key: str, texts: list[str], plan: FaultPlan | None) -> Run:
    """`Client.embed(texts)` once, with the client's defaults."""
    wire = Wire(plan)
    with Client(url, key, transport=WireTransport(wire)) as client:
        started = time.perf_counter()
        vectors = client.embed(texts)
        seconds = time.perf_counter() - started
        return _client_run("client: `embed(texts)` once (defaults)", texts, seconds, vectors, wire, client.metrics)


# -- checks and the report -----------------------------------------------------------------------------------------


def max_difference(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    return float(np.max(np.abs(got - want)))


def check_order(texts: list[str], got: np.ndarray, clean: np.ndarray) -> int:
    """How many vectors are not nearest to the clean vector of their own text (0: every item in its place)."""
    distances = (got**2).sum(1)[:, None] - 2 * got @ clean.T + (clean**2).sum(1)[None, :]
    nearest = distances.argmin(axis=1)
    return sum(1 for i, j in enumerate(nearest) if texts[j] != texts[i])


def render(report: dict[str, Any]) -> str:
    loop: Run = report["loop"]
    runs: list[Run] = report["clean"]
    faulted: list[tuple[Run, Run]] = report["faulted"]
    n = report["texts"]
    projected = loop.seconds * n / loop.texts
    plan: FaultPlan = report["plan"]
    lines = [
        "# Client benchmark (local stack, CPU model server)",
        "",
        f"{report['when']}, {os.cpu_count()} cores (1-minute load average {report['load']:.2f} before it started); "
        f"the whole bench (stack starts included) took {report['total_seconds']:.0f} s. "
        f"Texts: `bench.corpus.corpus({n}, seed=13)`, mixed lengths (mostly short "
        "queries, some paragraphs, a few past the model's 256-token limit). The stack is `python -m local_stack` in "
        "a child process with the template's settings (dispatch batch size 50, 1 s batching window); every mode "
        "below runs on a fresh one (started and warmed up outside the timings). `python -m bench.client` "
        "(`make bench-client`) writes this file.",
        "",
        "## Throughput and wall time (machine-dependent: compare the rows of one run)",
        "",
        "| mode | texts run | wall s | texts/s | throughput vs loop | wall time for "
        f"{n:,} texts | vs loop | HTTP requests | per text | retries | predictions created |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    wall_loop = f"{projected:,.0f} s" + (f" (projected from {loop.texts})" if loop.texts < n else "")
    lines.append(
        f"| {loop.name} | {loop.texts:,} | {loop.seconds:.1f} | {loop.throughput:.2f} | 1.00x | {wall_loop} | "
        f"1.00x | {loop.requests:,} | {loop.requests / loop.texts:.2f} | 0 (it has none) | {loop.created:,} |"
    )
    for run in runs:
        lines.append(
            f"| {run.name} | {run.texts:,} | {run.seconds:.1f} | {run.throughput:.1f} | "
            f"**{run.throughput / loop.throughput:.1f}x** | {run.seconds:.1f} s | {run.seconds / projected:.3f}x | "
            f"{run.requests:,} | {run.requests / run.texts:.3f} | {run.retries}"
            + (f" (real errors: {real_errors(run.wire)})" if run.wire["real errors"] else "")
            + f" | {run.created:,} |"
        )
    singles = runs[0]
    lines += [
        "",
        f"The plain loop pays the whole pipeline per text (submit, the dispatcher's batching window, the endpoint, "
        f"completion, the API's wait); its {loop.requests - loop.logical_posts} GETs are texts that were not done "
        "when the POST's wait ended. The concurrent calls share the server's batches; the whole list goes as "
        f"{runs[1].logical_posts} requests of up to 256 inputs. Vectors agree across modes: the plain loop (JSON "
        f"floats) vs the client (base64 float32) differ by at most {report['loop_vs_client']:.1e} on the "
        f"{loop.texts} texts both ran; the two client modes by at most {report['client_vs_client']:.1e}.",
        "",
        "**The concurrent single-text row is held back by the local stack, not by the client.** The client sends "
        "an `Idempotency-Key` with every POST, which the API stores in a DynamoDB transaction (the prediction and "
        "its key claim), and moto, the local DynamoDB, deep-copies the whole table for every transaction; the "
        "plain loop sends no key (a plain PutItem). So each of the client's submissions costs more as the table "
        f"fills, all on the one stack process's GIL: right after that run, {singles.post_ms['keyed']:.0f} ms per "
        f"keyed POST vs {singles.post_ms['plain']:.0f} ms without a key (15 of each, alternating, no wait). Real "
        "DynamoDB has no such cost; the whole-list mode sends only a few keyed POSTs and does not feel it.",
        "",
        "## Under injected 429 / 503 answers",
        "",
        f"The client's transport is wrapped by one that, from one random stream seeded with {plan.seed} and drawn "
        f"once per request in arrival order, answers {plan.rate_limited:.0%} of requests itself with 429 "
        f"(`Retry-After: 1`), {plan.unavailable:.0%} with 503 (no Retry-After: full-jitter backoff), and forwards "
        f"{plan.lost:.0%} but replaces the reply with a 503 (the server created or read the prediction; the reply "
        f"was lost), at most {plan.max_in_a_row} times in a row for one request. Same texts and modes; the "
        "single-text calls on a fresh stack again, the whole list on the stack of its clean run, right after it. "
        "The whole list makes only a few requests, so it meets only a few faults; the single-text calls are the "
        "stress test.",
        "",
        "| mode | HTTP requests | injected 429 | injected 503 | replies lost (POST / GET) | real errors | retries | "
        "Idempotency-Key replays | predictions created / logical submissions | items back, in order | max abs diff "
        "vs clean | wall s (clean) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clean, run in faulted:
        w = run.wire
        lines.append(
            f"| {run.name} | {run.requests:,} | {w['injected 429']} | {w['injected 503']} | "
            f"{w['injected lost']} ({w['lost POST']} / {w['lost GET']}) | {real_errors(w)} | {run.retries} | "
            f"{w['idempotent replays']} | {run.created:,} / {run.logical_posts:,} | "
            f"{run.vectors.shape[0]:,} / {run.texts:,}, {report['misplaced'][run.name]} misplaced | "
            f"{max_difference(run.vectors, clean.vectors):.1e} | {run.seconds:.1f} ({clean.seconds:.1f}) |"
        )
    lines += [
        "",
        f"Every injected failure was retried by the client and none reached the caller (the circuit breaker "
        f"{report['breaker']}); {report['retries_note']}. "
        "A lost POST reply is retried with the same Idempotency-Key and body, so the server answers with the "
        "prediction it already created (`Idempotent-Replayed: true`) instead of creating a second one: predictions "
        "created equal logical submissions (counted on the server, through the list endpoint, before and after "
        f"each run); {report['replays_note']}. A lost GET is simply read again. "
        '"Misplaced" counts vectors that are not nearest to the clean vector of their own text;'
        " the max abs diff is against the clean run of the same mode (batch composition "
        "on the server differs between runs, which moves the last float32 bits).",
        "",
    ]
    return "\n".join(lines)


def real_errors(wire: Counter[str]) -> str:
    """Failures the stack itself produced (not injected): how many, and which."""
    kinds = [
        f"{n}x HTTP {k.split()[1]}"
        for k, n in sorted(wire.items())
        if k.startswith("status ") and int(k.split()[1]) >= 400
    ]
    if wire["transport errors"]:
        kinds.append(f"{wire['transport errors']}x transport error")
    return f"{wire['real errors']}" + (f" ({', '.join(kinds)})" if kinds else "")


def timed(label: str, action: Callable[[], Run]) -> Run:
    log(f"{label} ...")
    run = action()
    log(f"{label}: {run.texts} texts in {run.seconds:.1f}s ({run.throughput:.1f}/s), {run.requests} requests")
    return run


def post_costs(url: str, key: str, count: int = 15) -> dict[str, float]:
    """Milliseconds per POST (no wait) with and without an Idempotency-Key, alternating, on a stack that has just
    run a mode: the local stack's moto deep-copies the whole DynamoDB table for every transaction, and a keyed POST
    is one (the prediction and its key claim)."""
    spent = {"keyed": 0.0, "plain": 0.0}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for i in range(2 * count):
            kind = "keyed" if i % 2 else "plain"
            headers = {"Idempotency-Key": f"bench-probe-{uuid.uuid4().hex}"} if kind == "keyed" else {}
            started = time.perf_counter()
            http.post("/v1/predictions", json={"inputs": ["a probe text"]}, headers=headers).raise_for_status()
            spent[kind] += time.perf_counter() - started
    return {kind: 1000 * seconds / count for kind, seconds in spent.items()}


Mode = tuple[str, Callable[[str, str], Run]]


def on_fresh_stack(*modes: Mode, probe: bool = False) -> list[Run]:
    """The modes one after the other on a stack of their own, so none pays for a table another one filled (moto's
    transactions copy the whole table: see post_costs). `probe`: measure POST costs after the last mode."""
    with tempfile.TemporaryDirectory(prefix="bench-client-") as state:
        stack = Stack(Path(state))
        started = time.perf_counter()
        stack.start()
        try:
            with Client(stack.url, stack.key) as client:
                client.embed(["a warm-up text"])
            log(f"stack up and warm after {time.perf_counter() - started:.0f}s")
            runs = []
            for label, action in modes:
                before = stack.prediction_count()
                run = timed(label, partial(action, stack.url, stack.key))
                run.created = stack.prediction_count() - before
                runs.append(run)
            if probe:
                runs[-1].post_ms = post_costs(stack.url, stack.key)
                log(f"POST cost after {modes[-1][0]}: {runs[-1].post_ms}")
            return runs
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300, help="texts for the client modes")
    parser.add_argument(
        "--sequential-texts", type=int, default=40, help="texts for the plain loop (the first of the same texts)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent embed([text]) calls")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injected faults")
    parser.add_argument("--output", type=Path, default=Path("bench/results/client.md"))
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    load = os.getloadavg()[0]
    texts = corpus(args.texts, seed=13)
    sequential = texts[: min(args.sequential_texts, args.texts)]
    plan = FaultPlan(args.seed)
    conc = args.concurrency
    [loop] = on_fresh_stack(("plain loop", lambda url, key: plain_loop(url, key, sequential)))
    [singles] = on_fresh_stack(
        ("client singles", lambda url, key: client_singles(url, key, texts, conc, None)), probe=True
    )
    [singles_faulted] = on_fresh_stack(
        ("client singles, faults", lambda url, key: client_singles(url, key, texts, conc, plan))
    )
    # Two or three keyed POSTs each: sharing a stack costs the second run nothing.
    whole, whole_faulted = on_fresh_stack(
        ("client whole list", lambda url, key: client_whole_list(url, key, texts, None)),
        ("client whole list, faults", lambda url, key: client_whole_list(url, key, texts, plan)),
    )
    faulted = [(singles, singles_faulted), (whole, whole_faulted)]
    misplaced = {run.name: check_order(texts, run.vectors, clean.vectors) for clean, run in faulted}
    opened = sum(r.metrics["breaker_opened"] for _, r in faulted)
    breaker = "never opened" if not opened else f"opened {opened} times"
    injected = [
        sum(n for k, n in r.wire.items() if k.startswith("injected ")) + r.wire["real errors"] for _, r in faulted
    ]
    retries_note = (
        "retries = injected faults + real errors (answers of 400 or more from the stack, or transport errors) in "
        "each row: each failed attempt cost exactly one more request"
        if all(r.retries == i for (_, r), i in zip(faulted, injected, strict=True))
        else "retries and injected faults differ: "
        + ", ".join(f"{r.retries} vs {i}" for (_, r), i in zip(faulted, injected, strict=True))
    )
    replays = [(r.wire["idempotent replays"], r.wire["lost POST"]) for _, r in faulted]
    replays_note = (
        "each lost POST reply was followed by exactly one replay (counted also when that reply was lost again)"
        if all(a == b for a, b in replays)
        else "replays vs lost POST replies: " + ", ".join(f"{a} vs {b}" for a, b in replays)
    )
    report = {
        "texts": args.texts,
        "loop": loop,
        "clean": [singles, whole],
        "faulted": faulted,
        "plan": plan,
        "misplaced": misplaced,
        "breaker": breaker,
        "retries_note": retries_note,
        "replays_note": replays_note,
        "loop_vs_client": max_difference(loop.vectors, singles.vectors[: loop.texts]),
        "client_vs_client": max_difference(singles.vectors, whole.vectors),
        "when": time.strftime("%Y-%m-%d"),
        "load": load,
        "total_seconds": time.perf_counter() - begun,
    }
    failures = []
    for clean, run in faulted:
        if run.vectors.shape != clean.vectors.shape:
            failures.append(f"{run.name}: {run.vectors.shape[0]} vectors for {run.texts} texts")
        elif max_difference(run.vectors, clean.vectors) > TOLERANCE or misplaced[run.name]:
            failures.append(f"{run.name}: vectors differ from the clean run's or are out of order")
        if run.created != run.logical_posts:
            failures.append(f"{run.name}: {run.created} predictions created for {run.logical_posts} submissions")
    publish(render(report), args.output)
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
