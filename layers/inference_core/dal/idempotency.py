"""Idempotency claims: `IDEM#<tenant>#<key>` -> the prediction it created and a hash of the request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, from_attrs, key, to_attrs
from inference_core.settings import get_settings


class IdempotencyKeyTaken(Exception):
    """The idempotency key already names a prediction."""


@dataclass(frozen=True)
class IdempotencyClaim:
    tenant_id: str
    key: str
    body_hash: str


@dataclass(frozen=True)
class ClaimedPrediction:
    prediction_id: str
    body_hash: str


def _pk(tenant_id: str, idempotency_key: str) -> str:
    return f"IDEM#{tenant_id}#{idempotency_key}"


class IdempotencyStore:
    def __init__(self, table: Table, retention: timedelta) -> None:
        self.table = table
        self.retention = retention

    def claim_put(self, claim: IdempotencyClaim, prediction_id: str, created_at: datetime) -> dict[str, Any]:
        """The conditional Put that claims the key, for the transaction that also writes the prediction."""
        item = {
            "pk": _pk(claim.tenant_id, claim.key),
            "kind": "idempotency",
            "prediction_id": prediction_id,
            "body_hash": claim.body_hash,
            "expires_at": int((created_at + self.retention).timestamp()),
        }
        return {"TableName": self.table.name, "Item": to_attrs(item), "ConditionExpression": "attribute_not_exists(pk)"}

    def find(self, tenant_id: str, idempotency_key: str) -> ClaimedPrediction | None:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(_pk(tenant_id, idempotency_key)), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the idempotency key") from exc
        if "Item" not in response:
            return None
        item = from_attrs(response["Item"])
        return ClaimedPrediction(prediction_id=item["prediction_id"], body_hash=item["body_hash"])

    def release(self, tenant_id: str, idempotency_key: str, prediction_id: str) -> None:
        """Free a key whose prediction never got queued, so the client's retry can use it."""
        try:
            self.table.client.delete_item(
                TableName=self.table.name,
                Key=key(_pk(tenant_id, idempotency_key)),
                ConditionExpression="prediction_id = :id",
                ExpressionAttributeValues={":id": {"S": prediction_id}},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise translate(exc, "could not release the idempotency key") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not release the idempotency key") from exc


@cached_factory
def idempotency_store() -> IdempotencyStore:
    settings = get_settings()
    return IdempotencyStore(Table(settings.table_name), timedelta(days=settings.record_retention_days))
