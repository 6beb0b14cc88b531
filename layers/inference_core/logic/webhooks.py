"""Webhook delivery: one queued event -> one signed POST, checked against the network guard at send time.

2xx is delivered. 410 Gone stops delivery of this event (the receiver said so). 429, 5xx, timeouts and connection
errors are retried on a growing schedule with jitter, honouring Retry-After, until the queue's redrive policy
moves the event to the dead-letter queue; the log says so on the last attempt. Any other answer (3xx: redirects
are never followed; other 4xx) is a final failure: the receiver refused it and repeating will not change that.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inference_core.dal import http
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import object_store
from inference_core.dal.predictions import prediction_store
from inference_core.dal.results import result_store
from inference_core.dal.webhook_events import Attempt, EventMessage, delivery_log, webhook_events
from inference_core.domain.clock import format_timestamp, utc_now
from inference_core.domain.jobs import JobApi
from inference_core.domain.openai_dialect import batch_event
from inference_core.domain.webhooks import signature_header
from inference_core.errors import NotFoundError
from inference_core.logic.payloads import job_payload, prediction_with_output
from inference_core.logic.webhook_secrets import secrets_of
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

MAX_BODY_BYTES = 64 * 1024
TIMEOUT_SECONDS = 10.0
# Seconds before attempt n+1 (n = 1, 2, ...): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
RETRY_SCHEDULE = (0, 5, 300, 1_800, 7_200, 18_000, 36_000)
USER_AGENT = "inference-webhooks/1"


class RetryLater(Exception):
    """The delivery failed in a way that may pass: try again after `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"retry in {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    status_code: int | None
    error: str | None


def policy() -> http.UrlPolicy:
    settings = get_settings()
    ports = {int(p) for p in settings.webhook_allowed_ports.split(",") if p.strip().isdigit()}
    return http.UrlPolicy(frozenset(ports | {443}), settings.allow_loopback_webhooks)


def check_url(url: str) -> None:
    """At submit time: what can be known without DNS, so users hear early (http.BlockedUrl says why)."""
    http.check_syntax(url, policy())


def body_for(message: EventMessage, now: datetime) -> bytes:
    """`{"type", "timestamp", "data"}` with `data` as GET returns the object; a prediction's output is inlined while
    the body stays under 64 KB, else `data` carries `output_url` (a link to a copy of the output) instead."""
    data: dict[str, Any]
    if message.subject == "prediction":
        prediction = prediction_store().get(message.subject_id, consistent=True)
        if prediction is None:
            raise NotFoundError("the prediction is gone", {"id": message.subject_id})
        data = prediction_with_output(prediction)
        body = _envelope(message, now, data)
        if len(body) <= MAX_BODY_BYTES or data["output"] is None:
            return body
        location = result_store().put_standalone(prediction.id, data["output"])
        link = object_store().presigned_get(location, get_settings().presigned_url_seconds)
        data = {**data, "output": None, "output_url": link}
        return _envelope(message, now, data)
    job = job_store().get(message.subject_id)
    if job is None:
        raise NotFoundError("the job is gone", {"id": message.subject_id})
    if job.api is JobApi.OPENAI:
        at = int((job.completed_at or now).timestamp())
        event = batch_event(message.event, job.id, message.webhook_id, at)
        return json.dumps(event, separators=(",", ":")).encode()
    return _envelope(message, now, job_payload(job))


def _envelope(message: EventMessage, now: datetime, data: dict[str, Any]) -> bytes:
    document = {"type": message.event, "timestamp": format_timestamp(now), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(message: EventMessage, attempt: int, last_attempt: bool, now: datetime | None = None) -> Delivery:
    """One attempt. Raises RetryLater when a later attempt may succeed (and this was not the last one)."""
    now = now or utc_now()
    timestamp = int(now.timestamp())
    try:
        body = body_for(message, now)
    except NotFoundError:
        _log(message, attempt, now, None, "the object no longer exists", 0)
        return Delivery(False, None, "gone")
    signing = secrets_of(message.tenant_id).in_use(now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing, message.webhook_id, timestamp, body),
    }
    try:
        result = http.post(message.url, body, headers, policy(), TIMEOUT_SECONDS)
    except http.BlockedUrl as exc:
        _log(message, attempt, now, None, f"blocked: {exc}", 0)
        metrics.add_metric(name="WebhooksBlocked", unit=MetricUnit.Count, value=1)
        return Delivery(False, None, f"blocked: {exc}")
    status = result.status_code
    if status is not None and 200 <= status < 300:
        _log(message, attempt, now, status, None, result.duration_ms)
        metrics.add_metric(name="WebhooksDelivered", unit=MetricUnit.Count, value=1)
        return Delivery(True, status, None)
    retryable = status is None or status == 429 or status >= 500
    error = result.error or f"HTTP {status}"
    if retryable and last_attempt:
        error = f"{error}; gave up after {attempt} attempts (moved to the dead-letter queue)"
    elif status == 410:
        error = "410 Gone: no more deliveries of this event"
    _log(message, attempt, now, status, error, result.duration_ms)
    if retryable and not last_attempt:
        raise RetryLater(_next_delay(attempt, result.retry_after))
    metrics.add_metric(name="WebhooksFailed", unit=MetricUnit.Count, value=1)
    return Delivery(False, status, error)


def _next_delay(attempt: int, retry_after: str | None) -> int:
    scheduled = RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE) - 1)]
    jittered = int(scheduled * random.uniform(0.8, 1.2))
    asked = int(retry_after) if retry_after and retry_after.strip().isdigit() else 0
    return max(jittered, min(asked, 43_200))


def _log(message: EventMessage, attempt: int, now: datetime, status: int | None, error: str | None, ms: int) -> None:
    delivery_log().record(
        message,
        Attempt(message.webhook_id, message.event, attempt, format_timestamp(now), status, error, ms),
    )
    logger.info(
        "webhook attempt", webhook_id=message.webhook_id, event=message.event, attempt=attempt, status_code=status
    )  # never the URL's query, the body or the signature


def deliveries(subject_id: str) -> list[Attempt]:
    return delivery_log().read(subject_id)[0]


def redeliver(subject_id: str) -> EventMessage | None:
    """Queue the object's last event again (same webhook-id: it is the same event). None when there was none."""
    _, last = delivery_log().read(subject_id)
    if last is not None:
        webhook_events().send(last)
    return last
