"""The circuit breaker's states (closed, open, half-open), as seen in exceptions, metrics and observer events."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from inference_client import (
    APIConnectionError,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    NotFoundError,
    Observer,
    RetryPolicy,
    ServerError,
)
from inference_client.observability import BreakerEvent, RejectedEvent, RequestEvent, RetryEvent

from tests.client.conftest import FakeClock, error

MISSING = "00000000-0000-0000-0000-000000000000"


class Recorder(Observer):
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_request(self, event: RequestEvent) -> None:
        self.events.append(event)

    def on_retry(self, event: RetryEvent) -> None:
        self.events.append(event)

    def on_breaker_change(self, event: BreakerEvent) -> None:
        self.events.append(event)

    def on_rejected(self, event: RejectedEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_closed_to_open_to_half_open_to_closed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, cooldown=10.0, clock=clock)
    for _ in range(2):
        assert breaker.acquire() is False
        breaker.record_failure(False)
    assert breaker.state == BreakerState.CLOSED
    breaker.record_success(False)  # a success resets the count
    for _ in range(3):
        breaker.acquire()
        breaker.record_failure(False)
    assert breaker.state == BreakerState.OPEN

    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()
    assert raised.value.state == "open"
    assert raised.value.consecutive_failures == 3
    assert raised.value.retry_after == pytest.approx(6.0)

    clock.advance(6.0)
    assert breaker.acquire() is True  # the probe
    assert breaker.state == BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()  # only one probe at a time
    assert raised.value.state == "half_open"
    assert raised.value.retry_after is None
    breaker.record_success(True)
    assert breaker.state == BreakerState.CLOSED
    assert breaker.acquire() is False


def test_a_failed_probe_opens_it_for_another_cooldown(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, cooldown=5.0, clock=clock)
    breaker.acquire()
    breaker.record_failure(False)
    clock.advance(5.0)
    assert breaker.acquire() is True
    breaker.record_failure(True)
    assert breaker.state == BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()
    assert raised.value.retry_after == pytest.approx(5.0)


def test_an_abandoned_probe_frees_the_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, cooldown=1.0, clock=clock)
    breaker.acquire()
    breaker.record_failure(False)
    clock.advance(1.0)
    assert breaker.acquire() is True
    breaker.release(True)
    assert breaker.acquire() is True


def test_threshold_zero_turns_it_off(clock: FakeClock) -> None:
    breaker = CircuitBreaker(0, clock=clock)
    for _ in range(100):
        breaker.acquire()
        breaker.record_failure(False)
    assert breaker.state == BreakerState.CLOSED


def test_the_client_fails_fast_while_open_and_probes_after_the_cooldown(api, clock, make_client) -> None:
    recorder = Recorder()
    breaker = CircuitBreaker(3, cooldown=10.0, clock=clock)
    api.script = [error(503, "unavailable", "busy")] * 3
    with make_client(breaker=breaker, retry=RetryPolicy(max_attempts=1), observers=[recorder]) as client:
        for _ in range(3):
            with pytest.raises(ServerError):
                client.predictions.list()
        sent = len(api.requests)
        with pytest.raises(CircuitOpenError) as raised:
            client.predictions.list()
        assert len(api.requests) == sent  # failing fast: nothing was sent
        assert raised.value.consecutive_failures == 3
        assert raised.value.retry_after == pytest.approx(10.0)
        snapshot = client.metrics.snapshot()
        assert snapshot["breaker_state"] == "open"
        assert snapshot["rejected_by_breaker"] == 1
        assert snapshot["breaker_opened"] == 1

        clock.advance(10.0)
        assert client.predictions.list().data == []  # the probe succeeds
        assert client.metrics.snapshot()["breaker_state"] == "closed"

    changes = [(e.previous, e.state) for e in recorder.of(BreakerEvent)]
    assert changes == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert len(recorder.of(RejectedEvent)) == 1
    assert [e.status_code for e in recorder.of(RequestEvent)] == [503, 503, 503, 200]


def test_client_errors_do_not_trip_it(api, clock, make_client) -> None:
    breaker = CircuitBreaker(2, clock=clock)
    with make_client(breaker=breaker) as client:
        for _ in range(5):
            with pytest.raises(NotFoundError):
                client.predictions.get(MISSING)
    assert breaker.state == BreakerState.CLOSED


def test_when_it_opens_during_retries_the_real_failure_is_raised(api, clock, make_client) -> None:
    breaker = CircuitBreaker(3, cooldown=30.0, clock=clock)
    api.script = [httpx.ConnectError("refused")] * 10
    with make_client(breaker=breaker, retry=RetryPolicy(max_attempts=6)) as client:
        with pytest.raises(APIConnectionError, match="circuit breaker is now open") as raised:
            client.predictions.list()
        assert isinstance(raised.value.__cause__, CircuitOpenError)
        assert len(api.requests) == 3
        with pytest.raises(CircuitOpenError):
            client.predictions.list()
        assert len(api.requests) == 3


def test_metrics_and_observers_count_requests_retries_and_latency(api, clock, make_client) -> None:
    recorder = Recorder()

    class Broken(Observer):
        def on_request(self, event: RequestEvent) -> None:
            raise RuntimeError("a broken observer must not break the client")

    api.script = [error(500, "internal_error", "oops")]
    with make_client(observers=[Broken(), recorder]) as client:
        client.predictions.create(["a"])
    snapshot = client.metrics.snapshot()
    assert snapshot["requests"] == 2
    assert snapshot["responses"] == {202: 1, 500: 1}
    assert snapshot["retries"] == 1
    assert snapshot["breaker_state"] == "closed"
    retry = recorder.of(RetryEvent)[0]
    assert (retry.method, retry.path, retry.attempt, retry.reason) == ("POST", "/v1/predictions", 1, "http_500")
    assert [e.attempt for e in recorder.of(RequestEvent)] == [1, 2]


def test_async_client_fails_fast_too(api, clock, make_async_client) -> None:
    breaker = CircuitBreaker(2, cooldown=10.0, clock=clock)
    api.script = [httpx.ConnectError("refused")] * 2

    async def scenario() -> None:
        async with make_async_client(breaker=breaker, retry=RetryPolicy(max_attempts=1)) as client:
            for _ in range(2):
                with pytest.raises(APIConnectionError):
                    await client.predictions.list()
            with pytest.raises(CircuitOpenError):
                await client.predictions.list()
            assert client.metrics.snapshot()["breaker_state"] == "open"

    asyncio.run(scenario())
    assert len(api.requests) == 2
