"""The queue of webhook events to deliver, and the per-object delivery log.

Events reach the queue from the outbox (logic/outbox.py): each is written on its record by the conditional write
that caused it, so a duplicate completion fails its condition and adds nothing. The sender function consumes the
queue; nothing on the inference path ever calls out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory, sqs
from inference_core.dal.table import Table, from_attrs, key, to_attrs
from inference_core.settings import get_settings

# The log keeps this many attempts per object (oldest dropped first would need a read: it stops growing instead).
MAX_LOGGED_ATTEMPTS = 100


@dataclass(frozen=True)
class EventMessage:
    event: str
    subject: str  # "prediction" | "job"
    subject_id: str
    tenant_id: str
    url: str
    webhook_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> EventMessage:
        document = json.loads(body)
        return cls(**{name: str(document[name]) for name in cls.__dataclass_fields__})


_SEND_BATCH = 10  # SendMessageBatch's limit


class WebhookEventQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, message: EventMessage) -> None:
        try:
            sqs().send_message(QueueUrl=self.queue_url, MessageBody=message.to_json())
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not queue the webhook event") from exc

    def send_many(self, messages: Sequence[EventMessage]) -> set[str]:
        """Queue events ten to a request; the webhook ids of those SQS took. A request that fails takes none of
        its ten (they stay in the outbox), and the others still go."""
        accepted: set[str] = set()
        for start in range(0, len(messages), _SEND_BATCH):
            part = messages[start : start + _SEND_BATCH]
            entries: Any = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(part)]
            try:
                response = sqs().send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                continue
            accepted |= {part[int(ok["Id"])].webhook_id for ok in response.get("Successful", [])}
        return accepted

    def retry_in(self, receipt_handle: str, seconds: int) -> None:
        """Hide a failed delivery until its next attempt is due."""
        try:
            sqs().change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not schedule the webhook retry") from exc


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    event: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryLog:
    """`WHLOG#<object id>`: the attempts (oldest first) and the last event, for redelivery."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def record(self, message: EventMessage, attempt: Attempt) -> None:
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=key(f"WHLOG#{message.subject_id}"),
                UpdateExpression="SET attempts = list_append(if_not_exists(attempts, :empty), :one), "
                "last_event = :event, tenant_id = :tenant",
                ConditionExpression="attribute_not_exists(attempts) OR size(attempts) < :max",
                ExpressionAttributeValues=to_attrs(
                    {
                        ":empty": [],
                        ":one": [{k: v for k, v in asdict(attempt).items() if v is not None}],
                        ":event": message.to_json(),
                        ":tenant": message.tenant_id,
                        ":max": MAX_LOGGED_ATTEMPTS,
                    }
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return  # the log is full; deliveries go on
            raise translate(exc, "could not log the webhook delivery") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not log the webhook delivery") from exc

    def read(self, subject_id: str) -> tuple[list[Attempt], EventMessage | None]:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(f"WHLOG#{subject_id}"), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the webhook deliveries") from exc
        if "Item" not in response:
            return [], None
        item: dict[str, Any] = from_attrs(response["Item"])
        attempts = [
            Attempt(
                webhook_id=a["webhook_id"],
                event=a["event"],
                attempt=int(a["attempt"]),
                at=a["at"],
                status_code=int(a["status_code"]) if "status_code" in a else None,
                error=a.get("error"),
                duration_ms=int(a["duration_ms"]),
            )
            for a in item.get("attempts", [])
        ]
        last = EventMessage.from_json(item["last_event"]) if item.get("last_event") else None
        return attempts, last


@cached_factory
def webhook_events() -> WebhookEventQueue:
    return WebhookEventQueue(get_settings().webhook_queue_url)


@cached_factory
def delivery_log() -> DeliveryLog:
    return DeliveryLog(Table(get_settings().table_name))
