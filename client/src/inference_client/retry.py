"""Which failures are retried, and how long to wait before each retry.

Retried: connection errors and timeouts, 408, 409 when the API says the same request is still in progress, 429 and
5xx (but 501). Waits grow exponentially with full jitter (a uniform draw in [0, min(max_delay, base_delay * 2**n)]);
a `Retry-After` header (seconds or an HTTP date) is honoured as a floor, up to `max_retry_after`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from inference_client.errors import APIError

# 409 codes that mean "the request with this Idempotency-Key is still being processed": retrying returns its result.
IN_PROGRESS_CODES = frozenset({"idempotency_key_in_use", "request_in_progress", "in_progress"})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    """Attempts in all, the first included (1: never retry)."""
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    """A longer Retry-After is cut to this."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None, random: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 32))
        jittered = random() * cap
        if retry_after is None:
            return jittered
        return max(min(retry_after, self.max_retry_after), jittered)


@dataclass(frozen=True)
class Failure:
    """A failed attempt: whether to retry it, whether it counts against the circuit breaker, and why."""

    retryable: bool
    breaker_failure: bool
    reason: str
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def classify_response(response: httpx.Response) -> Failure | None:
    """None for a success (< 400); otherwise how to treat the failure."""
    status = response.status_code
    if status < 400:
        return None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    reason = f"http_{status}"
    if status == 408:
        return Failure(True, True, reason, retry_after)
    if status == 429:
        return Failure(True, False, reason, retry_after)
    if status == 409:
        code = APIError.from_response(response).code
        return Failure(code in IN_PROGRESS_CODES, False, f"{reason}_{code}", retry_after)
    if status >= 500 and status != 501:
        return Failure(True, True, reason, retry_after)
    return Failure(False, status >= 500, reason, retry_after)


def classify_exception(exc: httpx.TransportError) -> Failure:
    """Connection errors and timeouts are retried (every POST carries an Idempotency-Key, so that is safe); a bad
    URL or a local protocol error is not."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return Failure(False, False, type(exc).__name__)
    return Failure(True, True, type(exc).__name__)
