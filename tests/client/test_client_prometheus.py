"""The optional Prometheus exporter: a Client or AsyncClient driven through the fake API, its metrics read back from a
fresh CollectorRegistry; and the extra stays optional (importing inference_client never imports prometheus_client)."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from inference_client import CircuitBreaker, CircuitOpenError, NotFoundError, RetryPolicy, ServerError
from inference_client.prometheus import PrometheusObserver, route_label, status_class
from prometheus_client import CollectorRegistry

from tests.client.conftest import FakeAPI, FakeClock, error

MISSING = "00000000-0000-0000-0000-000000000000"
CLIENT_SRC = Path(__file__).resolve().parents[2] / "client" / "src"


def requests_total(registry: CollectorRegistry, method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status_class": status}
    return registry.get_sample_value("inference_client_requests_total", labels) or 0.0


def breaker_gauge(registry: CollectorRegistry) -> dict[str, float | None]:
    return {
        state: registry.get_sample_value("inference_client_circuit_breaker_state", {"state": state})
        for state in ("closed", "open", "half_open")
    }


def test_requests_retries_and_latency(api: FakeAPI, clock: FakeClock, make_client) -> None:
    registry = CollectorRegistry()

    def slow(request: httpx.Request) -> None:
        clock.advance(0.3)  # this attempt takes 0.3 s; then the fake API answers as usual

    api.script = [error(503, "unavailable", "try again"), slow]
    with make_client(observers=[PrometheusObserver(registry)]) as client:
        prediction = client.predictions.create(["A cat sleeps on the sofa."], wait=20)
        client.predictions.get(prediction.id)
        with pytest.raises(NotFoundError):
            client.predictions.get(MISSING)

    assert requests_total(registry, "POST", "/v1/predictions", "5xx") == 1
    assert requests_total(registry, "POST", "/v1/predictions", "2xx") == 1
    assert requests_total(registry, "GET", "/v1/predictions/{id}", "2xx") == 1  # one series for every id
    assert requests_total(registry, "GET", "/v1/predictions/{id}", "4xx") == 1
    assert registry.get_sample_value("inference_client_retries_total", {"reason": "http_503"}) == 1

    post = {"method": "POST", "route": "/v1/predictions"}
    histogram = "inference_client_request_duration_seconds"
    assert registry.get_sample_value(f"{histogram}_count", post) == 2
    assert registry.get_sample_value(f"{histogram}_sum", post) == pytest.approx(0.3)
    assert registry.get_sample_value(f"{histogram}_bucket", {**post, "le": "0.25"}) == 1  # the 503, at once
    assert registry.get_sample_value(f"{histogram}_bucket", {**post, "le": "0.5"}) == 2
    assert registry.get_sample_value(f"{histogram}_count", {"method": "GET", "route": "/v1/predictions/{id}"}) == 2
    assert breaker_gauge(registry) == {"closed": 1, "open": 0, "half_open": 0}


def test_transport_errors_and_their_retries(api: FakeAPI, make_client) -> None:
    registry = CollectorRegistry()
    api.script = [httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")]
    with make_client(observers=[PrometheusObserver(registry)]) as client:
        client.predictions.create(["some text"])

    assert requests_total(registry, "POST", "/v1/predictions", "error") == 2
    assert requests_total(registry, "POST", "/v1/predictions", "2xx") == 1
    assert registry.get_sample_value("inference_client_retries_total", {"reason": "ConnectError"}) == 1
    assert registry.get_sample_value("inference_client_retries_total", {"reason": "ReadTimeout"}) == 1


def test_breaker_state_gauge_and_rejections(api: FakeAPI, clock: FakeClock, make_client) -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry)
    api.script = [error(503, "unavailable", "down")] * 2
    with make_client(
        observers=[observer], breaker=CircuitBreaker(2, 30.0, clock=clock), retry=RetryPolicy(max_attempts=1)
    ) as client:
        for _ in range(2):
            with pytest.raises(ServerError):
                client.predictions.create(["some text"])
        assert breaker_gauge(registry) == {"closed": 0, "open": 1, "half_open": 0}
        assert registry.get_sample_value("inference_client_circuit_breaker_opened_total") == 1

        with pytest.raises(CircuitOpenError):
            client.predictions.get(MISSING)
        labels = {"method": "GET", "route": "/v1/predictions/{id}"}
        assert registry.get_sample_value("inference_client_rejected_requests_total", labels) == 1

        clock.advance(31.0)  # the cool-down passes: a probe goes through (half-open) and its success closes it
        client.predictions.create(["some text"])
        assert breaker_gauge(registry) == {"closed": 1, "open": 0, "half_open": 0}
        assert registry.get_sample_value("inference_client_circuit_breaker_opened_total") == 1


def test_async_client_and_presigned_links(api: FakeAPI, make_async_client) -> None:
    registry = CollectorRegistry()
    api.large_output = lambda _inputs: True  # the output is behind a presigned link

    async def run() -> None:
        async with make_async_client(observers=[PrometheusObserver(registry)]) as client:
            assert len(await client.embed(["one", "two"])) == 2

    asyncio.run(run())
    assert requests_total(registry, "POST", "/v1/predictions", "2xx") == 1
    assert requests_total(registry, "GET", "<output_url>", "2xx") == 1  # never the link itself
    routes = {
        sample.labels["route"] for metric in registry.collect() for sample in metric.samples if "route" in sample.labels
    }
    assert routes == {"/v1/predictions", "<output_url>"}


def test_namespace_and_buckets(make_client) -> None:
    registry = CollectorRegistry()
    with make_client(observers=[PrometheusObserver(registry, namespace="myapp", buckets=(1.0,))]) as client:
        client.predictions.create(["some text"])
    labels = {"method": "POST", "route": "/v1/predictions"}
    assert registry.get_sample_value("myapp_requests_total", {**labels, "status_class": "2xx"}) == 1
    assert registry.get_sample_value("myapp_request_duration_seconds_bucket", {**labels, "le": "1.0"}) == 1
    assert registry.get_sample_value("inference_client_requests_total", {**labels, "status_class": "2xx"}) is None


def test_one_observer_per_registry() -> None:
    registry = CollectorRegistry()
    PrometheusObserver(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        PrometheusObserver(registry)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/predictions", "/v1/predictions"),
        (f"/v1/predictions/{MISSING}", "/v1/predictions/{id}"),
        (f"/v1/predictions/{MISSING}/cancel", "/v1/predictions/{id}/cancel"),
        ("/v1/jobs", "/v1/jobs"),
        ("/v1/jobs/job_0123456789abcdef0123456789abcdef", "/v1/jobs/{id}"),
        ("/v1/jobs/job_0123456789abcdef0123456789abcdef/retry", "/v1/jobs/{id}/retry"),
        ("/v1/jobs?limit=20", "/v1/jobs"),
        ("<upload_url>", "<upload_url>"),
        ("<error_url>", "<error_url>"),
    ],
)
def test_route_label(path: str, route: str) -> None:
    assert route_label(path) == route


@pytest.mark.parametrize(("status", "label"), [(200, "2xx"), (202, "2xx"), (404, "4xx"), (503, "5xx"), (None, "error")])
def test_status_class(status: int | None, label: str) -> None:
    assert status_class(status) == label


def test_importing_the_package_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, inference_client, inference_client.cli\n"
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client imported eagerly'\n"
        "import inference_client.prometheus\n"
        "assert 'prometheus_client' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT_SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "inference_client.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'inference-client\[prometheus\]'"):
        importlib.import_module("inference_client.prometheus")
