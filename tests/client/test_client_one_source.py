"""`Client` and `AsyncClient` are made from one source: the same methods (signatures, docstrings) as plain calls and
as coroutines, and the same handling of what ends a call early (a failure, a reader that stops, an interrupt)."""

from __future__ import annotations

import asyncio
import inspect
import threading

import httpx
import pytest
from inference_client import (
    AsyncClient,
    BreakerState,
    CircuitBreaker,
    Client,
    PredictionError,
    RetryPolicy,
    ServerError,
)

from tests.client.conftest import API_KEY, API_URL, error

METHODS = {
    "": ["embed", "embed_batches"],
    "predictions": ["create", "get", "cancel", "wait", "iterate", "list"],
    "jobs": ["create", "get", "list", "iterate", "cancel", "retry", "wait", "download"],
    "webhooks": ["secret", "rotate_secret"],
}
ITERATORS = {"embed_batches", "iterate"}


def test_both_clients_have_the_same_methods_as_calls_and_as_coroutines() -> None:
    sync, asynchronous = Client(API_URL, API_KEY), AsyncClient(API_URL, API_KEY)
    for part, names in METHODS.items():
        for name in names:
            blocking = getattr(getattr(sync, part) if part else sync, name)
            awaiting = getattr(getattr(asynchronous, part) if part else asynchronous, name)
            assert inspect.signature(blocking) == inspect.signature(awaiting), name
            assert "self" not in inspect.signature(blocking).parameters
            assert blocking.__doc__, name
            assert blocking.__doc__ == awaiting.__doc__, name
            assert blocking.__name__ == awaiting.__name__ == name
            assert not inspect.iscoroutinefunction(blocking)
            assert inspect.iscoroutinefunction(awaiting) is (name not in ITERATORS), name
    sync.close()
    asyncio.run(asynchronous.aclose())


def test_a_sync_embed_batches_closed_early_stops_its_workers(api, make_client) -> None:
    texts = [f"t{i}" for i in range(256 * 12)]
    api.polls_needed = lambda inputs: 0 if inputs[0] == "t0" else 1000  # all but the first would poll for long
    with make_client() as client:
        batches = client.embed_batches(texts, concurrency=2)
        assert next(batches).start == 0
        # The fake clock sleeps at once, so how many polls happen before the close depends on the scheduler: what
        # is checked is that none starts after it (each of the 2 workers may finish the one it is sending).
        polls_at_close = len([r for r in api.requests if r.method == "GET"])
        batches.close()
        for thread in threading.enumerate():
            if thread.name.startswith("inference-embed"):
                thread.join(timeout=10)
                assert not thread.is_alive()
    polls = [r for r in api.requests if r.method == "GET"]
    assert len(polls) <= polls_at_close + 2  # the workers stopped polling once the call was over
    assert len(api.creates()) <= 1 + 2 * 2  # no chunk was submitted after the close


def test_an_async_embed_that_fails_cancels_the_requests_still_running(api, make_async_client) -> None:
    texts = [f"t{i}" for i in range(256 * 12)]
    api.polls_needed = lambda inputs: 0 if inputs[0] == "t0" else 1000
    api.fails = lambda inputs: inputs[0] == "t0"

    async def scenario() -> set[asyncio.Task[object]]:
        async with make_async_client() as client:
            with pytest.raises(PredictionError):
                await client.embed(texts, concurrency=3)
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()  # nothing left running
    assert len([r for r in api.requests if r.method == "GET"]) < 50


def test_an_async_embed_batches_closed_early_cancels_its_tasks(api, make_async_client) -> None:
    api.polls_needed = lambda inputs: 0 if inputs[0] == "t0" else 1000

    async def scenario() -> set[asyncio.Task[object]]:
        async with make_async_client() as client:
            batches = client.embed_batches([f"t{i}" for i in range(256 * 12)], concurrency=2)
            first = await anext(batches)
            assert first.start == 0
            await batches.aclose()  # type: ignore[attr-defined]
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()
    assert len([r for r in api.requests if r.method == "GET"]) < 50


def test_an_interrupt_during_the_probe_frees_the_breaker_for_the_next_one(api, clock, make_client) -> None:
    breaker = CircuitBreaker(1, cooldown=10.0, clock=clock)

    def interrupt(_request: httpx.Request) -> None:
        raise KeyboardInterrupt

    api.script = [error(503, "unavailable", "busy"), interrupt]
    with make_client(breaker=breaker, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(ServerError):
            client.predictions.list()
        clock.advance(10.0)
        with pytest.raises(KeyboardInterrupt):
            client.predictions.list()  # the probe, cut short
        assert client.predictions.list().data == []  # a new probe was let through, and closed the breaker
    assert breaker.state == BreakerState.CLOSED


def test_a_cancelled_probe_frees_the_breaker_too(api, clock, make_async_client) -> None:
    breaker = CircuitBreaker(1, cooldown=10.0, clock=clock)
    started = asyncio.Event()

    class Stalling(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            started.set()
            await asyncio.Event().wait()  # never answers
            raise AssertionError("unreachable")

    async def scenario() -> None:
        breaker.acquire()
        breaker.record_failure(False)  # open
        clock.advance(10.0)
        async with AsyncClient(API_URL, API_KEY, transport=Stalling(), breaker=breaker, clock=clock) as client:
            probe = asyncio.ensure_future(client.predictions.list())
            await started.wait()
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
        assert breaker.acquire() is True  # the slot is free for the next probe

    asyncio.run(scenario())
