"""Prometheus metrics for a client: `PrometheusObserver`, an `Observer` that exports counters, a latency histogram and
the circuit breaker's state. Needs the `prometheus` extra (`pip install "inference-client[prometheus]"`); nothing
else in `inference_client` imports `prometheus_client`.

from prometheus_client import start_http_server
from inference_client import Client
from inference_client.prometheus import PrometheusObserver

start_http_server(9100)  # or serve prometheus_client.REGISTRY from your own app
with Client(observers=[PrometheusObserver()]) as client:
    client.embed(texts)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the module
    raise ImportError(
        "inference_client.prometheus needs prometheus-client: pip install 'inference-client[prometheus]'"
    ) from exc

from inference_client.observability import BreakerEvent, BreakerState, Observer, RejectedEvent, RequestEvent, RetryEvent

DEFAULT_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
"""Seconds. Up to a minute: a create sent with `Prefer: wait=20` may be held for 20 s before it answers."""

# /v1/predictions/<uuid>/cancel -> /v1/predictions/{id}/cancel: one series per route, not one per prediction or job.
_ID_SEGMENT = re.compile(r"^(/v\d+/[A-Za-z_-]+)/[^/]+")


def route_label(path: str) -> str:
    """The `route` label of a path: ids replaced by `{id}`; presigned links stay `<output_url>`, `<upload_url>` and
    `<error_url>` (events never carry the link itself)."""
    return _ID_SEGMENT.sub(r"\1/{id}", path.split("?", 1)[0])


def status_class(status_code: int | None) -> str:
    """`2xx` ... `5xx`, or `error` when no response came (connection error, timeout)."""
    return "error" if status_code is None else f"{status_code // 100}xx"


class PrometheusObserver(Observer):
    """Pass as `Client(observers=[PrometheusObserver()])` (or `AsyncClient`). With the default namespace it exports:

    - `inference_client_requests_total{method, route, status_class}`: every HTTP attempt, retries included;
      `status_class` is `2xx`..`5xx`, or `error` when no response came.
    - `inference_client_retries_total{reason}`: retries, by why (`http_503`, `http_429`, `ConnectError`,
      `ReadTimeout`, ...).
    - `inference_client_request_duration_seconds{method, route}`: a histogram of attempt latency.
    - `inference_client_rejected_requests_total{method, route}`: requests the open circuit breaker refused.
    - `inference_client_circuit_breaker_state{state}`: 1 for the current state (`closed`, `open`, `half_open`),
      0 for the others; `inference_client_circuit_breaker_opened_total` counts openings.

    The metrics are registered in `registry` (default: prometheus_client's global `REGISTRY`), once: make one
    observer per registry and share it between clients if you have several (the breaker gauge then shows the last
    change any of them reported). `route` is the API path with ids as `{id}`, or `<output_url>`, `<upload_url>`,
    `<error_url>` for presigned links, so the number of series stays small.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        namespace: str = "inference_client",
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.registry = registry
        where: dict[str, Any] = {"namespace": namespace, "registry": registry}
        self.requests = Counter(
            "requests",
            "HTTP attempts made by the client, by method, route and status class (error: no response).",
            ["method", "route", "status_class"],
            **where,
        )
        self.retries = Counter("retries", "Retries, by the reason the attempt failed.", ["reason"], **where)
        self.latency = Histogram(
            "request_duration_seconds",
            "Latency of each HTTP attempt, in seconds.",
            ["method", "route"],
            buckets=tuple(buckets),
            **where,
        )
        self.rejected = Counter(
            "rejected_requests",
            "Requests refused without being sent because the circuit breaker was open.",
            ["method", "route"],
            **where,
        )
        self.breaker_state = Gauge(
            "circuit_breaker_state", "1 for the circuit breaker's current state, 0 for the others.", ["state"], **where
        )
        self.breaker_opened = Counter("circuit_breaker_opened", "Times the circuit breaker opened.", **where)
        self._set_breaker_state(BreakerState.CLOSED)

    def on_request(self, event: RequestEvent) -> None:
        route = route_label(event.path)
        self.requests.labels(event.method, route, status_class(event.status_code)).inc()
        self.latency.labels(event.method, route).observe(event.latency)

    def on_retry(self, event: RetryEvent) -> None:
        self.retries.labels(event.reason).inc()

    def on_breaker_change(self, event: BreakerEvent) -> None:
        self._set_breaker_state(event.state)
        if event.state == BreakerState.OPEN:
            self.breaker_opened.inc()

    def on_rejected(self, event: RejectedEvent) -> None:
        self.rejected.labels(event.method, route_label(event.path)).inc()

    def _set_breaker_state(self, current: BreakerState) -> None:
        for state in BreakerState:
            self.breaker_state.labels(state.value).set(1 if state == current else 0)
