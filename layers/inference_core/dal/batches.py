"""Batch records: `BATCH#<id>` -> which predictions one endpoint invocation carries."""

from __future__ import annotations

from datetime import datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, from_attrs, iso, key, to_attrs
from inference_core.domain.batches import BatchRecord
from inference_core.settings import get_settings


class BatchStore:
    def __init__(self, table: Table, retention: timedelta) -> None:
        self.table = table
        self.retention = retention

    def put(self, batch: BatchRecord) -> None:
        item = {
            "pk": f"BATCH#{batch.batch_id}",
            "kind": "batch",
            "batch_id": batch.batch_id,
            "prediction_ids": batch.prediction_ids,
            "input_location": batch.input_location,
            "created_at": iso(batch.created_at),
            "expires_at": int((batch.created_at + self.retention).timestamp()),
            "hits_location": batch.hits_location,
            "answered_ids": batch.answered_ids or None,
            "partial_hits": batch.partial_hits or None,
            # 32 bytes a key instead of 64 hex characters: a big batch's keys must fit in one item.
            "fill_keys": {pid: b"".join(bytes.fromhex(k) for k in keys) for pid, keys in batch.fill_keys.items()}
            or None,
        }
        try:
            self.table.client.put_item(TableName=self.table.name, Item=to_attrs(item))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not record the batch") from exc

    def existing(self, batch_ids: set[str]) -> frozenset[str]:
        """Which of these batches are recorded (their ids alone are read)."""
        items = self.table.batch_get((f"BATCH#{i}" for i in sorted(batch_ids)), "batches", attributes=["batch_id"])
        return frozenset(item["batch_id"] for item in items)

    def get(self, batch_id: str) -> BatchRecord | None:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(f"BATCH#{batch_id}"), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the batch") from exc
        if "Item" not in response:
            return None
        item = from_attrs(response["Item"])
        return BatchRecord(
            batch_id=item["batch_id"],
            prediction_ids=list(item["prediction_ids"]),
            input_location=item["input_location"],
            created_at=datetime.fromisoformat(item["created_at"]),
            hits_location=item.get("hits_location"),
            answered_ids=list(item.get("answered_ids") or []),
            partial_hits=bool(item.get("partial_hits")),
            fill_keys={pid: _hex_keys(bytes(blob)) for pid, blob in (item.get("fill_keys") or {}).items()},
        )


def _hex_keys(blob: bytes) -> list[str]:
    return [blob[i : i + 32].hex() for i in range(0, len(blob), 32)]


@cached_factory
def batch_store() -> BatchStore:
    settings = get_settings()
    return BatchStore(Table(settings.table_name), timedelta(days=settings.record_retention_days))
