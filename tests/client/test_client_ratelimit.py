"""The token bucket, on a fake clock: sleeps move time, nothing waits on the wall clock."""

from __future__ import annotations

import asyncio
import threading

import pytest
from inference_client import AsyncRateLimiter, RateLimiter

from tests.client.conftest import FakeClock


def test_a_burst_then_one_every_interval(clock: FakeClock) -> None:
    limiter = RateLimiter(2.0, burst=2, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(6):
        limiter.acquire()
        times.append(clock.now - 1000.0)
    assert times == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])


def test_the_long_run_rate_is_the_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)  # burst defaults to one second's worth
    for _ in range(110):
        limiter.acquire()
    assert clock.now - 1000.0 == pytest.approx(10.0)


def test_idle_time_refills_up_to_the_burst_only(clock: FakeClock) -> None:
    limiter = RateLimiter(1.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.advance(100.0)  # a long pause refills 3 tokens, not 100
    start = clock.now
    for _ in range(5):
        limiter.acquire()
    assert clock.now - start == pytest.approx(2.0)


def test_concurrent_callers_get_distinct_slots() -> None:
    # Real threads, fake time: each caller reserves a slot under the lock, so the waits are 0, 1, 2, ... intervals.
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    limiter = RateLimiter(4.0, burst=1, clock=lambda: 0.0, sleep=record)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.25 * n for n in range(1, 8)])


def test_async_limiter(clock: FakeClock) -> None:
    limiter = AsyncRateLimiter(5.0, burst=1, clock=clock, sleep=clock.async_sleep)

    async def scenario() -> None:
        await asyncio.gather(*(limiter.acquire() for _ in range(5)))

    asyncio.run(scenario())
    assert clock.now - 1000.0 == pytest.approx(0.8)


def test_embed_sends_requests_at_the_rate(api, clock, make_client) -> None:
    texts = [f"text {i}" for i in range(600)]  # 3 requests of at most 256 inputs
    with make_client() as client:
        client.embed(texts, rate_limit=0.5, concurrency=1)
    # burst 1: the first request at once, then one every 2 s (each answer arrives with the Prefer: wait reply)
    assert len(api.creates()) == 3
    assert clock.now - 1000.0 == pytest.approx(4.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0)])
def test_bad_settings_are_refused(rate: float, burst: int | None) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)
