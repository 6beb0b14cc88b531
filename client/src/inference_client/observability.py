"""Hooks for metrics (an `Observer` with four callbacks), the built-in `ClientMetrics`, and the client's logger.

Nothing here ever sees an API key, a request body or an output: events carry the method, the path (a presigned
output link is reported as `<output_url>`, never with its signature), the status, the attempt and the latency.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger("inference_client")
logger.addHandler(logging.NullHandler())


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class RequestEvent:
    """One HTTP attempt finished: `status_code` is None when no response came (then `error` names the failure)."""

    method: str
    path: str
    attempt: int
    status_code: int | None
    latency: float
    error: str | None = None


@dataclass(frozen=True)
class RetryEvent:
    """An attempt failed in a retryable way; the client sleeps `delay` seconds before attempt `attempt + 1`."""

    method: str
    path: str
    attempt: int
    delay: float
    reason: str


@dataclass(frozen=True)
class BreakerEvent:
    """The circuit breaker moved from `previous` to `state`."""

    previous: BreakerState
    state: BreakerState
    consecutive_failures: int


@dataclass(frozen=True)
class RejectedEvent:
    """A request was refused without being sent because the circuit breaker is open."""

    method: str
    path: str
    retry_after: float | None


class Observer:
    """Subclass and override what you need; pass instances as `observers=[...]`. Callbacks run on the thread (or
    event loop) that made the request and must be quick; an exception in one is logged and otherwise ignored."""

    def on_request(self, event: RequestEvent) -> None:
        """After every HTTP attempt."""

    def on_retry(self, event: RetryEvent) -> None:
        """Before sleeping for a retry."""

    def on_breaker_change(self, event: BreakerEvent) -> None:
        """When the circuit breaker changes state."""

    def on_rejected(self, event: RejectedEvent) -> None:
        """When the open circuit breaker refuses a request."""


class ClientMetrics(Observer):
    """In-memory counters every client keeps (`client.metrics`); `snapshot()` gives them as a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.responses: dict[int, int] = {}
        self.transport_errors = 0
        self.retries = 0
        self.rejected = 0
        self.latency_total = 0.0
        self.latency_max = 0.0
        self.breaker_state = BreakerState.CLOSED
        self.breaker_opened = 0

    def on_request(self, event: RequestEvent) -> None:
        with self._lock:
            self.requests += 1
            if event.status_code is None:
                self.transport_errors += 1
            else:
                self.responses[event.status_code] = self.responses.get(event.status_code, 0) + 1
            self.latency_total += event.latency
            self.latency_max = max(self.latency_max, event.latency)

    def on_retry(self, event: RetryEvent) -> None:
        with self._lock:
            self.retries += 1

    def on_breaker_change(self, event: BreakerEvent) -> None:
        with self._lock:
            self.breaker_state = event.state
            if event.state == BreakerState.OPEN:
                self.breaker_opened += 1

    def on_rejected(self, event: RejectedEvent) -> None:
        with self._lock:
            self.rejected += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "responses": dict(sorted(self.responses.items())),
                "transport_errors": self.transport_errors,
                "retries": self.retries,
                "rejected_by_breaker": self.rejected,
                "latency_avg_s": self.latency_total / self.requests if self.requests else 0.0,
                "latency_max_s": self.latency_max,
                "breaker_state": self.breaker_state.value,
                "breaker_opened": self.breaker_opened,
            }


class _Fanout:
    """Calls every observer; one that raises is logged and skipped."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def _each(self, name: str, event: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(event)
            except Exception:
                logger.exception("observer %s.%s raised", type(observer).__name__, name)

    def request(self, event: RequestEvent) -> None:
        self._each("on_request", event)

    def retry(self, event: RetryEvent) -> None:
        self._each("on_retry", event)

    def breaker_change(self, event: BreakerEvent) -> None:
        self._each("on_breaker_change", event)

    def rejected(self, event: RejectedEvent) -> None:
        self._each("on_rejected", event)
