"""Webhook events and their signatures, per the Standard Webhooks specification (standardwebhooks.com).

A delivery carries `webhook-id` (the same on every retry of one event, so receivers can drop duplicates),
`webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
for each secret in use, space-separated (two during a rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32
# How long the writer of an event has to queue it before the sweeper may queue it instead (both may: a receiver
# drops the duplicate by its webhook-id).
OUTBOX_GRACE = timedelta(seconds=60)


class WebhookEvent(StrEnum):
    PREDICTION_COMPLETED = "prediction.completed"
    PREDICTION_STARTED = "prediction.started"
    JOB_COMPLETED = "job.completed"
    JOB_PROGRESS = "job.progress"
    # An OpenAI batch's end, as OpenAI names it (openai's `client.webhooks.unwrap()` parses them).
    BATCH_COMPLETED = "batch.completed"
    BATCH_FAILED = "batch.failed"
    BATCH_EXPIRED = "batch.expired"
    BATCH_CANCELLED = "batch.cancelled"


@dataclass(frozen=True, order=True)
class PendingEvent:
    """An event kept on its record (the outbox) from the write that caused it until it is queued for delivery: the
    write and the event stand or fall together, and the sweeper queues whatever a crash or an outage left there."""

    event: WebhookEvent
    webhook_id: str

    def encode(self) -> str:
        return f"{self.event.value} {self.webhook_id}"

    @classmethod
    def decode(cls, value: str) -> PendingEvent:
        event, _, msg_id = value.partition(" ")
        return cls(WebhookEvent(event), msg_id)

    @classmethod
    def of(cls, subject_id: str, event: WebhookEvent, sequence: int = 0) -> PendingEvent:
        return cls(event, webhook_id(subject_id, event, sequence))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def webhook_id(subject_id: str, event: WebhookEvent, sequence: int = 0) -> str:
    """The same event of the same object always has the same id: a duplicate completion cannot mint a new one.
    `sequence` tells apart events that legitimately repeat (job progress, a redelivery asked for by the user)."""
    digest = hashlib.sha256(f"{subject_id}\n{event.value}\n{sequence}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets_in_use: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets_in_use)
