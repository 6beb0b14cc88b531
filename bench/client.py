"""Client benchmark on the local stack: a plain httpx loop vs `inference_client`, clean and under injected 429/503s.

    python -m bench.client [--texts 300] [--sequential-texts 40] [--concurrency 16] [--seed 7]   (make bench-client)

Every mode runs on a fresh `python -m local_stack` child process (stack and clients do not share a GIL; fresh,
because moto copies the whole DynamoDB table on every transaction, so a table one mode filled would slow the next)
and embeds the same seeded corpus (bench/corpus.py): 1. a plain loop, one text at a time (`POST` with
`Prefer: wait=20`, then `GET` every 0.5 s until done), on the first `--sequential-texts` texts, its wall time for all
`--texts` projected from its rate; 2. `AsyncClient.embed([text])` per text, `--concurrency` at a time; 3.
`Client.embed(texts)` once, with its defaults. Requests are counted on the wire (an event hook; for the client a
wrapping transport, checked against `client.metrics`). Modes 2 and 3 run again through a transport that answers a
seeded share of requests with 429/503 itself or loses a forwarded reply (a 503 instead), at most twice in a row for
one request: each item must come back once and in order (the clean run's vector for its text, within 1e-6, and
nearest to it), with one prediction created per logical submission. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@contextlib.contextmanager
def child_stack(timeout: float = 240) -> Iterator[tuple[str, str]]:
    """`python -m local_stack` in a child process with its own state directory (harness.local_stack runs in this
    process, on the clients' GIL): its API URL and key, once it answers."""
    with tempfile.TemporaryDirectory(prefix="bench-client-") as scratch:
        state, port = Path(scratch), str(free_port("127.0.0.1"))
        with (state / "stack.log").open("wb") as output:
            command = [sys.executable, "-m", "local_stack", "--port", port, "--state-dir", scratch]
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(state):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the local stack exited during startup:\n{(state / 'stack.log').read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the local stack did not answer within {timeout:.0f}s")
                time.sleep(0.25)
            yield read_env_file(state / "env")["API_URL"], (state / "api-key").read_text().strip()
        finally:
            process.terminate()  # SIGTERM
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(state: Path) -> bool:
    if not ((state / "env").is_file() and (state / "api-key").is_file()):
        return False
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"{read_env_file(state / 'env')['API_URL']}/health", timeout=2).status_code == 200
    return False


def prediction_count(url: str, key: str) -> int:
    """How many predictions the tenant has, read through the API's list (not counted in any mode)."""
    with Client(url, key) as client:
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
            if (plan := self.plan) is not None:
                draw = self._random.random()  # drawn for every request, so the schedule is fixed by arrival order
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

    def count(self, *names: str) -> None:
        with self._lock:
            self.counts.update(names)


def _injected(status: int, request: httpx.Request) -> httpx.Response:
    code, headers = ("rate_limited", {"Retry-After": "1"}) if status == 429 else ("service_unavailable", {})
    body = {"error": {"code": code, "message": INJECTED_BY, "details": None}}
    return httpx.Response(status, headers=headers, json=body, request=request)


class WireTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A real transport (sync or async) behind the wire's counts and faults."""

    def __init__(self, wire: Wire, inner: Any) -> None:
        self.wire, self.inner = wire, inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        action = self.wire.decide(request)
        if action in ("429", "503"):
            return _injected(int(action), request)
        with self.transport_errors():
            response: httpx.Response = self.inner.handle_request(request)
        if action == "lost":
            response.read()  # and closed
        return self.settle(action, request, response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        action = self.wire.decide(request)
        if action in ("429", "503"):
            return _injected(int(action), request)
        with self.transport_errors():
            response: httpx.Response = await self.inner.handle_async_request(request)
        if action == "lost":
            await response.aread()  # and closed
        return self.settle(action, request, response)

    @contextlib.contextmanager
    def transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError:
            self.wire.count("real errors", "transport errors")
            raise

    def settle(self, action: str, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """The reply, or a 503 for a lost one; the server's Idempotency-Key replays are counted in lost ones too."""
        replays = ["idempotent replays"] if response.headers.get("Idempotent-Replayed") == "true" else []
        if action == "lost":
            self.wire.count(*replays)
            return _injected(503, request)
        errors = ["real errors"] if response.status_code >= 400 else []
        self.wire.count(f"status {response.status_code}", *errors, *replays)
        return response

    def close(self) -> None:
        self.inner.close()

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


def _http(url: str, key: str, **options: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, **options)


def plain_loop(url: str, key: str, texts: list[str]) -> Run:
    """One text at a time, the way a user without the client would write it."""
    requests = Counter[str]()
    vectors = []
    started = time.perf_counter()
    with _http(url, key, event_hooks={"request": [lambda request: requests.update([request.method])]}) as http:
        for text in texts:
            response = http.post("/v1/predictions", json={"inputs": [text]}, headers={"Prefer": "wait=20"})
            while (prediction := response.raise_for_status().json())["status"] in ("queued", "running"):
                time.sleep(POLL_SECONDS)
                response = http.get(f"/v1/predictions/{prediction['id']}")
            if prediction["status"] != "succeeded":
                raise RuntimeError(f"prediction {prediction['id']} is {prediction['status']}: {prediction['error']}")
            vectors.append(prediction["output"]["embeddings"][0])
    seconds, name = time.perf_counter() - started, "plain httpx loop, one text at a time"
    return Run(
        name, len(texts), seconds, np.array(vectors, dtype=np.float64), requests.total(), logical_posts=requests["POST"]
    )


def client_run(url: str, key: str, texts: list[str], plan: FaultPlan | None, concurrency: int | None = None) -> Run:
    """`Client.embed(texts)` once, with the client's defaults; or, with `concurrency`, `AsyncClient.embed([text])`
    per text, that many calls at a time."""
    wire = Wire(plan)

    async def singles(concurrency: int) -> tuple[float, list[list[float]], dict[str, Any]]:
        slots = asyncio.Semaphore(concurrency)
        async with AsyncClient(url, key, transport=WireTransport(wire, httpx.AsyncHTTPTransport())) as client:

            async def one(text: str) -> list[float]:
                async with slots:
                    vectors = await client.embed([text])
                if len(vectors) != 1:
                    raise AssertionError(f"embed([text]) returned {len(vectors)} vectors")
                return vectors[0]

            started = time.perf_counter()
            vectors = await asyncio.gather(*(one(text) for text in texts))
            seconds = time.perf_counter() - started
        return seconds, vectors, client.metrics.snapshot()

    if concurrency is None:
        name = "client: `embed(texts)` once (defaults)"
        with Client(url, key, transport=WireTransport(wire, httpx.HTTPTransport())) as client:
            started = time.perf_counter()
            vectors = client.embed(texts)
            seconds, metrics = time.perf_counter() - started, client.metrics.snapshot()
    else:
        name = f"client: {len(texts):,} `embed([text])` calls, {concurrency} at a time"
        seconds, vectors, metrics = asyncio.run(singles(concurrency))
    if metrics["requests"] != wire.counts["requests"]:
        raise AssertionError(f"client metrics say {metrics['requests']} requests, the wire {wire.counts['requests']}")
    requests, posts = wire.counts["requests"], len(wire.post_keys)
    vectors_array = np.array(vectors, dtype=np.float64)
    return Run(name, len(texts), seconds, vectors_array, requests, metrics["retries"], wire.counts, metrics, posts)


def post_costs(url: str, key: str, count: int = 15) -> dict[str, float]:
    """Milliseconds per POST (no wait) with and without an Idempotency-Key, alternating, on a stack that has just
    run a mode: the local stack's moto deep-copies the whole DynamoDB table for every transaction, and a keyed POST
    is one (the prediction and its key claim)."""
    spent = {"keyed": 0.0, "plain": 0.0}
    with _http(url, key) as http:
        for i in range(2 * count):
            kind = "keyed" if i % 2 else "plain"
            headers = {"Idempotency-Key": f"bench-probe-{uuid.uuid4().hex}"} if kind == "keyed" else {}
            started = time.perf_counter()
            http.post("/v1/predictions", json={"inputs": ["a probe text"]}, headers=headers).raise_for_status()
            spent[kind] += time.perf_counter() - started
    return {kind: 1000 * seconds / count for kind, seconds in spent.items()}


def on_fresh_stack(*modes: tuple[str, Callable[[str, str], Run]], probe: bool = False) -> list[Run]:
    """The modes one after the other on a stack of their own. `probe`: measure POST costs after the last mode."""
    started = time.perf_counter()
    with child_stack() as (url, key):
        with Client(url, key) as client:
            client.embed(["a warm-up text"])
        log(f"stack up and warm after {time.perf_counter() - started:.0f}s")
        runs = []
        for label, action in modes:
            before = prediction_count(url, key)
            log(f"{label} ...")
            run = action(url, key)
            log(f"{label}: {run.texts} texts in {run.seconds:.1f}s ({run.throughput:.1f}/s), {run.requests} requests")
            run.created = prediction_count(url, key) - before
            runs.append(run)
        if probe:
            runs[-1].post_ms = post_costs(url, key)
            log(f"POST cost after {modes[-1][0]}: {runs[-1].post_ms}")
        return runs


# -- checks and the report -----------------------------------------------------------------------------------------


def max_difference(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != {want.shape}")
    return float(np.max(np.abs(got - want)))


def count_misplaced(texts: list[str], got: np.ndarray, clean: np.ndarray) -> int:
    """How many vectors are not nearest to the clean vector of their own text (0: every item in its place)."""
    distances = (got**2).sum(1)[:, None] - 2 * got @ clean.T + (clean**2).sum(1)[None, :]
    return sum(1 for i, j in enumerate(distances.argmin(axis=1)) if texts[j] != texts[i])


def real_errors(wire: Counter[str]) -> str:
    """Failures the stack itself produced (not injected): how many, and which."""
    codes = sorted((k, n) for k, n in wire.items() if k.startswith("status ") and int(k.split()[1]) >= 400)
    kinds = [f"{n}x HTTP {k.split()[1]}" for k, n in codes]
    kinds += [f"{wire['transport errors']}x transport error"] if wire["transport errors"] else []
    return f"{wire['real errors']}" + (f" ({', '.join(kinds)})" if kinds else "")


def render(args: argparse.Namespace, loop: Run, faulted: list[tuple[Run, Run]], misplaced: dict[str, int]) -> str:
    n, plan, ((singles, _), (whole, _)) = args.texts, FaultPlan(args.seed), faulted
    projected = loop.seconds * n / loop.texts
    opened = sum(r.metrics["breaker_opened"] for _, r in faulted)
    # Each failed attempt, injected or real, should cost exactly one retry; each lost POST reply one replay.
    retries = [
        (r.retries, sum(c for k, c in r.wire.items() if k.startswith("injected ")) + r.wire["real errors"])
        for _, r in faulted
    ]
    replays = [(r.wire["idempotent replays"], r.wire["lost POST"]) for _, r in faulted]
    lines = [
        "# Client benchmark (local stack, CPU model server)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores (1-minute load average {args.load:.2f} before it "
        f"started); the whole bench (stack starts included) took {args.total_seconds:.0f} s. Texts: "
        f"`bench.corpus.corpus({n}, seed=13)`, mixed lengths (mostly short queries, some paragraphs, a few past the "
        "model's 256-token limit). The stack is `python -m local_stack` in a child process with the template's "
        "settings (dispatch batch size 50, 1 s batching window); every mode below runs on a fresh one (started and "
        "warmed up outside the timings). `python -m bench.client` (`make bench-client`) writes this file.",
        "",
        "## Throughput and wall time (machine-dependent: compare the rows of one run)",
        "",
        "| mode | texts run | wall s | texts/s | throughput vs loop | wall time for "
        f"{n:,} texts | vs loop | HTTP requests | per text | retries | predictions created |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {loop.name} | {loop.texts:,} | {loop.seconds:.1f} | {loop.throughput:.2f} | 1.00x | {projected:,.0f} s"
        + (f" (projected from {loop.texts})" if loop.texts < n else "")
        + f" | 1.00x | {loop.requests:,} | {loop.requests / loop.texts:.2f} | 0 (it has none) | {loop.created:,} |",
    ]
    for run in (singles, whole):
        lines.append(
            f"| {run.name} | {run.texts:,} | {run.seconds:.1f} | {run.throughput:.1f} | "
            f"**{run.throughput / loop.throughput:.1f}x** | {run.seconds:.1f} s | {run.seconds / projected:.3f}x | "
            f"{run.requests:,} | {run.requests / run.texts:.3f} | {run.retries}"
            + (f" (real errors: {real_errors(run.wire)})" if run.wire["real errors"] else "")
            + f" | {run.created:,} |"
        )
    lines += [
        "",
        f"The plain loop pays the whole pipeline per text (submit, the dispatcher's batching window, the endpoint, "
        f"completion, the API's wait); its {loop.requests - loop.logical_posts} GETs are texts that were not done "
        "when the POST's wait ended. The concurrent calls share the server's batches; the whole list goes as "
        f"{whole.logical_posts} requests of up to 256 inputs. Vectors agree across modes: the plain loop (JSON "
        "floats) vs the client (base64 float32) differ by at most "
        f"{max_difference(loop.vectors, singles.vectors[: loop.texts]):.1e} on the {loop.texts} texts both ran; the "
        f"two client modes by at most {max_difference(singles.vectors, whole.vectors):.1e}.",
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
            f"{run.vectors.shape[0]:,} / {run.texts:,}, {misplaced[run.name]} misplaced | "
            f"{max_difference(run.vectors, clean.vectors):.1e} | {run.seconds:.1f} ({clean.seconds:.1f}) |"
        )
    if all(a == b for a, b in retries):
        retries_note = (
            "retries = injected faults + real errors (answers of 400 or more from the stack, or transport errors) in "
            "each row: each failed attempt cost exactly one more request"
        )
    else:
        retries_note = "retries and injected faults differ: " + ", ".join(f"{a} vs {b}" for a, b in retries)
    if all(a == b for a, b in replays):
        replays_note = (
            "each lost POST reply was followed by exactly one replay (counted also when that reply was lost again)"
        )
    else:
        replays_note = "replays vs lost POST replies: " + ", ".join(f"{a} vs {b}" for a, b in replays)
    lines += [
        "",
        "Every injected failure was retried by the client and none reached the caller (the circuit breaker "
        f"{f'opened {opened} times' if opened else 'never opened'}); {retries_note}. A lost POST reply is retried "
        "with the same Idempotency-Key and body, so the server answers with the prediction it already created "
        "(`Idempotent-Replayed: true`) instead of creating a second one: predictions created equal logical "
        "submissions (counted on the server, through the list endpoint, before and after each run); "
        f'{replays_note}. A lost GET is simply read again. "Misplaced" counts vectors that are not nearest to the '
        "clean vector of their own text; the max abs diff is against the clean run of the same mode (batch "
        "composition on the server differs between runs, which moves the last float32 bits).",
        "",
    ]
    return "\n".join(lines)


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
    begun, args.load = time.perf_counter(), os.getloadavg()[0]
    texts = corpus(args.texts, seed=13)
    sequential = texts[: min(args.sequential_texts, args.texts)]
    plan, conc = FaultPlan(args.seed), args.concurrency
    [loop] = on_fresh_stack(("plain loop", lambda url, key: plain_loop(url, key, sequential)))
    [singles] = on_fresh_stack(("client singles", lambda url, key: client_run(url, key, texts, None, conc)), probe=True)
    [singles_faulted] = on_fresh_stack(
        ("client singles, faults", lambda url, key: client_run(url, key, texts, plan, conc))
    )
    # Two or three keyed POSTs each: sharing a stack costs the second run nothing.
    whole, whole_faulted = on_fresh_stack(
        ("client whole list", lambda url, key: client_run(url, key, texts, None)),
        ("client whole list, faults", lambda url, key: client_run(url, key, texts, plan)),
    )
    faulted = [(singles, singles_faulted), (whole, whole_faulted)]
    misplaced = {run.name: count_misplaced(texts, run.vectors, clean.vectors) for clean, run in faulted}
    failures = []
    for clean, run in faulted:
        if run.vectors.shape != clean.vectors.shape:
            failures.append(f"{run.name}: {run.vectors.shape[0]} vectors for {run.texts} texts")
        elif max_difference(run.vectors, clean.vectors) > TOLERANCE or misplaced[run.name]:
            failures.append(f"{run.name}: vectors differ from the clean run's or are out of order")
        if run.created != run.logical_posts:
            failures.append(f"{run.name}: {run.created} predictions created for {run.logical_posts} submissions")
    args.total_seconds = time.perf_counter() - begun
    publish(render(args, loop, faulted, misplaced), args.output)
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
