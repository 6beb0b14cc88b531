"""Webhook delivery over moto and a loopback receiver: signed per Standard Webhooks (checked with the reference
package), retried with the same webhook-id, stopped by 410, never sent twice for one completion, job events, the
delivery log and redelivery."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from functions.webhooks import handler as webhook_handler
from inference_core.logic.webhooks import RETRY_SCHEDULE
from inference_core.settings import get_settings
from tests.integration.conftest import Pipeline
from tests.integration.test_jobs import JobDriver, create_job, good_lines, jsonl, upload

pytestmark = pytest.mark.usefixtures("aws")


class Receiver(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(Receiver.answers.pop(0) if Receiver.answers else 204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
    get_settings.cache_clear()
    Receiver.answers, Receiver.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def send_webhooks(pipeline: Pipeline) -> dict[str, Any]:
    """The sender function over what is queued now (as its event source mapping would call it)."""
    messages = pipeline.receive("WebhookQueue")
    return pipeline.deliver("WebhookQueue", messages, webhook_handler.lambda_handler) if messages else {}


def verified(pipeline: Pipeline, headers: dict[str, str], delivery: tuple[dict[str, str], bytes]) -> dict[str, Any]:
    secret = pipeline.api.get("/v1/webhooks/secret", headers=headers).json()["secret"]
    payload: dict[str, Any] = Webhook(secret).verify(delivery[1], delivery[0])
    return payload


def test_a_finished_prediction_is_delivered_signed_with_the_object_as_get_shows_it(
    pipeline: Pipeline, receiver: str
) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    send_webhooks(pipeline)

    assert len(Receiver.seen) == 1
    payload = verified(pipeline, headers, Receiver.seen[0])  # the reference implementation accepts it
    assert payload["type"] == "prediction.completed"
    assert payload["data"] == pipeline.get(headers, created["id"])
    assert Receiver.seen[0][0]["webhook-id"].startswith("msg_")
    log = pipeline.api.get(f"/v1/predictions/{created['id']}/webhook_deliveries", headers=headers).json()["data"]
    assert [(a["attempt"], a["status_code"], a["event"]) for a in log] == [(1, 204, "prediction.completed")]


def test_a_500_is_retried_with_the_same_webhook_id(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[int] = []

    def due_now(attempt: int, retry_after: str | None) -> int:
        delays.append(RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE) - 1)])
        return 0  # as if the scheduled time had passed

    monkeypatch.setattr("inference_core.logic.webhooks._next_delay", due_now)
    headers = pipeline.headers()
    Receiver.answers = [500, 200]
    created = pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    first = send_webhooks(pipeline)
    assert len(first["batchItemFailures"]) == 1
    send_webhooks(pipeline)

    assert delays == [5]  # the second attempt was scheduled 5 s after the first
    assert len(Receiver.seen) == 2
    assert len({delivery[0]["webhook-id"] for delivery in Receiver.seen}) == 1
    log = pipeline.api.get(f"/v1/predictions/{created['id']}/webhook_deliveries", headers=headers).json()["data"]
    assert [(a["attempt"], a["status_code"]) for a in log] == [(1, 500), (2, 200)]
    assert "error" in log[0]
    assert "error" not in log[1]


def test_410_stops_delivery(pipeline: Pipeline, receiver: str) -> None:
    headers = pipeline.headers()
    Receiver.answers = [410]
    created = pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    result = send_webhooks(pipeline)

    assert result["batchItemFailures"] == []
    assert pipeline.receive("WebhookQueue") == []
    log = pipeline.api.get(f"/v1/predictions/{created['id']}/webhook_deliveries", headers=headers).json()["data"]
    assert log[0]["status_code"] == 410
    assert "no more deliveries" in log[0]["error"]


def test_a_duplicate_completion_sends_once(pipeline: Pipeline, receiver: str) -> None:
    headers = pipeline.headers()
    pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.publish("SuccessTopic", notification)  # SNS delivers it twice
    pipeline.complete()
    pipeline.complete()

    send_webhooks(pipeline)

    assert len(Receiver.seen) == 1


def test_an_output_too_large_for_the_body_is_a_link(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inference_core.logic.webhooks.MAX_BODY_BYTES", 200)
    headers = pipeline.headers()
    pipeline.submit(headers, ["a", "b", "c"], webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    send_webhooks(pipeline)

    data = json.loads(Receiver.seen[0][1])["data"]
    assert data["output"] is None
    assert data["output_url"]


def test_a_finished_job_is_delivered_and_can_be_redelivered(pipeline: Pipeline, receiver: str) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver)
    upload(job, jsonl(good_lines(2)))
    JobDriver(pipeline).run()

    send_webhooks(pipeline)
    payload = verified(pipeline, headers, Receiver.seen[0])
    assert payload["type"] == "job.completed"
    assert payload["data"]["request_counts"] == {"total": 2, "completed": 2, "failed": 0}

    again = pipeline.api.post(f"/v1/jobs/{job['id']}/webhook_deliveries/redeliver", headers=headers)
    assert again.status_code == 202
    send_webhooks(pipeline)
    assert Receiver.seen[1][0]["webhook-id"] == Receiver.seen[0][0]["webhook-id"]
    log = pipeline.api.get(f"/v1/jobs/{job['id']}/webhook_deliveries", headers=headers).json()["data"]
    assert len(log) == 2


def test_internal_webhook_urls_are_refused_at_submit(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    for url in ["https://10.0.0.1/x", "https://169.254.169.254/latest", "https://u:p@example.com/", "http://a.com/"]:
        response = pipeline.api.post("/v1/predictions", json={"inputs": "x", "webhook": url}, headers=headers)
        assert response.status_code == 422, (url, response.text)


def test_nothing_to_redeliver_is_a_conflict(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello")
    response = pipeline.api.post(f"/v1/predictions/{created['id']}/webhook_deliveries/redeliver", headers=headers)
    assert response.status_code == 409


def test_started_is_sent_only_when_asked_for(pipeline: Pipeline, receiver: str) -> None:
    headers = pipeline.headers()
    pipeline.submit(headers, "plain", webhook=receiver)
    pipeline.submit(headers, "with start", webhook=receiver, webhook_events_filter=["started", "completed"])
    pipeline.dispatch()
    send_webhooks(pipeline)
    assert [json.loads(body)["type"] for _, body in Receiver.seen] == ["prediction.started"]
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    send_webhooks(pipeline)
    assert sorted(json.loads(body)["type"] for _, body in Receiver.seen[1:]) == ["prediction.completed"] * 2


def test_job_progress_events_are_sent_at_most_every_30_seconds(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver, webhook_events_filter=["progress", "completed"])
    upload(job, jsonl(good_lines(4)))
    JobDriver(pipeline).run()  # four chunks finish within a second

    send_webhooks(pipeline)

    types = sorted(json.loads(body)["type"] for _, body in Receiver.seen)
    assert types == ["job.completed", "job.progress"]


def test_an_unknown_event_name_is_refused(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    body = {"inputs": "x", "webhook": "https://example.com/h", "webhook_events_filter": ["progress"]}
    assert pipeline.api.post("/v1/predictions", json=body, headers=headers).status_code == 422
    assert (
        pipeline.api.post("/v1/jobs", json={"webhook_events_filter": ["started"]}, headers=headers).status_code == 422
    )


def test_after_a_rotation_deliveries_carry_both_signatures(pipeline: Pipeline, receiver: str) -> None:
    headers = pipeline.headers()
    old = pipeline.api.get("/v1/webhooks/secret", headers=headers).json()["secret"]
    new = pipeline.api.post("/v1/webhooks/secret/rotate", headers=headers).json()["secret"]
    pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    send_webhooks(pipeline)

    delivery_headers, body = Receiver.seen[0]
    assert len(delivery_headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, delivery_headers)["type"] == "prediction.completed"  # receivers not switched yet
    assert Webhook(new).verify(body, delivery_headers)["type"] == "prediction.completed"


def test_an_event_that_could_not_be_queued_is_queued_by_the_sweeper(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.sweeper import handler as sweeper_handler
    from inference_core.dal.webhook_events import WebhookEventQueue

    real_send = WebhookEventQueue.send_many
    failures = iter([True])

    def flaky_send(self: WebhookEventQueue, messages: Any) -> set[str]:
        if next(failures, False):
            return set()  # SQS throttled the request: nothing queued
        return real_send(self, messages)

    monkeypatch.setattr(WebhookEventQueue, "send_many", flaky_send)
    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"
    assert pipeline.receive("WebhookQueue") == []  # the send failed after the write

    sweeper_handler.lambda_handler({}, pipeline.context)
    send_webhooks(pipeline)

    assert len(Receiver.seen) == 1
    assert json.loads(Receiver.seen[0][1])["data"]["id"] == created["id"]


def test_a_record_with_a_receive_count_that_is_no_number_is_delivered_and_fails_nothing_else(
    pipeline: Pipeline, receiver: str
) -> None:
    headers = pipeline.headers()
    for text in ("one", "two"):
        pipeline.submit(headers, text, webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    messages = pipeline.receive("WebhookQueue")
    assert len(messages) == 2
    messages[0]["Attributes"]["ApproximateReceiveCount"] = "many"

    result = pipeline.deliver("WebhookQueue", messages, webhook_handler.lambda_handler)

    assert result == {"batchItemFailures": []}
    assert len(Receiver.seen) == 2


@pytest.mark.parametrize("body", ["not json", "{}", '{"event": "prediction.completed"}', "[]"])
def test_a_malformed_webhook_event_fails_alone(pipeline: Pipeline, body: str) -> None:
    event = {"Records": [{"messageId": "bad", "receiptHandle": "r", "body": body, "attributes": {}}]}
    assert webhook_handler.lambda_handler(event, pipeline.context) == {"batchItemFailures": [{"itemIdentifier": "bad"}]}


def test_an_event_for_a_url_that_became_internal_is_refused_at_send(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The URL passed the submit-time check (a name), but at send time it resolves to the metadata address.
    from inference_core.dal import http as guarded

    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello", webhook="https://hooks.example.com/x")
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    monkeypatch.setattr(guarded, "system_resolver", lambda host, port: ["169.254.169.254"])
    monkeypatch.setattr(guarded.post, "__defaults__", (10.0, guarded.system_resolver))

    result = send_webhooks(pipeline)

    assert result["batchItemFailures"] == []  # refused for good, not retried
    log = pipeline.api.get(f"/v1/predictions/{created['id']}/webhook_deliveries", headers=headers).json()["data"]
    assert log[0]["error"].startswith("blocked:")
    assert "169.254.169.254" in log[0]["error"]
