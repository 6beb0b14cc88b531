"""DynamoDB access for status records, batches, idempotency keys and API keys (one table, `pk` hash key)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from inference_core.dal.clients import client
from inference_core.errors import TransientError, ValidationFailedError
from inference_core.logic.models import (
    ApiKey,
    BatchRecord,
    ErrorInfo,
    Prediction,
    PredictionMetrics,
    PredictionStatus,
)
from inference_core.settings import get_settings

TENANT_INDEX = "tenant-created-index"
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class IdempotencyKeyTaken(Exception):
    """The idempotency key already names a prediction."""


def _to_attrs(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def _from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in attrs.items()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _transient(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES


def prediction_key(prediction_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"PRED#{prediction_id}"}}


def prediction_to_item(prediction: Prediction, retention: timedelta) -> dict[str, Any]:
    created = _iso(prediction.created_at)
    return {
        "pk": f"PRED#{prediction.id}",
        "kind": "prediction",
        "id": prediction.id,
        "tenant_id": prediction.tenant_id,
        "status": prediction.status.value,
        "created_at": created,
        "input_count": prediction.input_count,
        "parameters": json.dumps(prediction.parameters, separators=(",", ":")),
        "metadata": prediction.metadata or None,
        "webhook": prediction.webhook,
        "gsi1pk": f"TENANT#{prediction.tenant_id}",
        "gsi1sk": f"{created}#{prediction.id}",
        "expires_at": int((prediction.created_at + retention).timestamp()),
    }


def item_to_prediction(item: Mapping[str, Any]) -> Prediction:
    error = None
    if item.get("error_code"):
        error = ErrorInfo(code=item["error_code"], message=item.get("error_message", ""))
    output = json.loads(item["output"]) if item.get("output") else None
    return Prediction(
        id=item["id"],
        tenant_id=item["tenant_id"],
        status=PredictionStatus(item["status"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        input_count=int(item["input_count"]),
        parameters=json.loads(item.get("parameters") or "{}"),
        metadata=dict(item.get("metadata") or {}),
        webhook=item.get("webhook"),
        started_at=_dt(item.get("started_at")),
        completed_at=_dt(item.get("completed_at")),
        batch_id=item.get("batch_id"),
        output=output,
        output_location=item.get("output_location"),
        error=error,
        metrics=PredictionMetrics(
            queue_ms=int(item["queue_ms"]) if "queue_ms" in item else None,
            inference_ms=int(item["inference_ms"]) if "inference_ms" in item else None,
        ),
    )


class PredictionStore:
    def __init__(self, table_name: str, retention: timedelta) -> None:
        self.table_name = table_name
        self.retention = retention

    @property
    def _ddb(self) -> Any:
        return client("dynamodb")

    # -- predictions -------------------------------------------------------------------------------------------

    def create(self, prediction: Prediction, idempotency: tuple[str, str] | None = None) -> None:
        """Write a new record; with (idempotency key, body hash), claim the key in the same transaction."""
        put = {
            "TableName": self.table_name,
            "Item": _to_attrs(prediction_to_item(prediction, self.retention)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            if idempotency is None:
                self._ddb.put_item(**put)
                return
            key, body_hash = idempotency
            claim = {
                "TableName": self.table_name,
                "Item": _to_attrs(
                    {
                        "pk": _idempotency_pk(prediction.tenant_id, key),
                        "kind": "idempotency",
                        "prediction_id": prediction.id,
                        "body_hash": body_hash,
                        "expires_at": int((prediction.created_at + self.retention).timestamp()),
                    }
                ),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            self._ddb.transact_write_items(TransactItems=[{"Put": put}, {"Put": claim}])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                    raise IdempotencyKeyTaken(key) from exc
            raise TransientError("could not store the prediction", {"aws_error": code}) from exc

    def release_idempotency(self, tenant_id: str, key: str, prediction_id: str) -> None:
        """Free a key whose prediction never got queued, so the client's retry can use it."""
        try:
            self._ddb.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": _idempotency_pk(tenant_id, key)}},
                ConditionExpression="prediction_id = :id",
                ExpressionAttributeValues={":id": {"S": prediction_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def idempotency_record(self, tenant_id: str, key: str) -> tuple[str, str] | None:
        response = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": {"S": _idempotency_pk(tenant_id, key)}}, ConsistentRead=True
        )
        if "Item" not in response:
            return None
        item = _from_attrs(response["Item"])
        return item["prediction_id"], item["body_hash"]

    def get(self, prediction_id: str, consistent: bool = False) -> Prediction | None:
        response = self._ddb.get_item(
            TableName=self.table_name, Key=prediction_key(prediction_id), ConsistentRead=consistent
        )
        return item_to_prediction(_from_attrs(response["Item"])) if "Item" in response else None

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, Prediction]:
        """BatchGetItem in chunks of 100, retrying unprocessed keys (a handful of rounds at most)."""
        ids = list(dict.fromkeys(prediction_ids))
        found: dict[str, Prediction] = {}
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {
                self.table_name: {"Keys": [prediction_key(i) for i in ids[start : start + 100]], "ConsistentRead": True}
            }
            for _ in range(5):
                try:
                    response = self._ddb.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise TransientError("could not read predictions") from exc
                for attrs in response.get("Responses", {}).get(self.table_name, []):
                    prediction = item_to_prediction(_from_attrs(attrs))
                    found[prediction.id] = prediction
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            if request:
                raise TransientError("DynamoDB left keys unprocessed")
        return found

    def transition(
        self,
        prediction_id: str,
        to_status: PredictionStatus,
        allowed_from: Iterable[PredictionStatus],
        fields: Mapping[str, Any] | None = None,
        require_batch_id: str | None = None,
    ) -> tuple[Prediction | None, Prediction | None]:
        """Conditionally move a record forward. Returns (new, None) on success, (None, current) when refused."""
        values: dict[str, Any] = {":to": to_status.value}
        names = {"#status": "status"}
        sets = ["#status = :to"]
        for i, (name, value) in enumerate((fields or {}).items()):
            if value is None:
                continue
            names[f"#f{i}"] = name
            values[f":f{i}"] = _iso(value) if isinstance(value, datetime) else value
            sets.append(f"#f{i} = :f{i}")
        sources = sorted(s.value for s in allowed_from)
        for i, source in enumerate(sources):
            values[f":from{i}"] = source
        condition = f"attribute_exists(pk) AND #status IN ({', '.join(f':from{i}' for i in range(len(sources)))})"
        if require_batch_id is not None:
            names["#batch"] = "batch_id"
            values[":batch"] = require_batch_id
            condition += " AND #batch = :batch"
        try:
            response = self._ddb.update_item(
                TableName=self.table_name,
                Key=prediction_key(prediction_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_attrs(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                return None, item_to_prediction(_from_attrs(old)) if old else None
            if _transient(exc):
                raise TransientError("could not update the prediction", {"aws_error": error.get("Code")}) from exc
            raise
        return item_to_prediction(_from_attrs(response["Attributes"])), None

    def list_for_tenant(
        self, tenant_id: str, limit: int, status: PredictionStatus | None, cursor: str | None
    ) -> tuple[list[Prediction], str | None]:
        """Newest first. A status filter may need several pages of the index to fill `limit`."""
        partition = f"TENANT#{tenant_id}"
        start_key = _decode_cursor(cursor, partition) if cursor else None
        items: list[Prediction] = []
        while True:
            query: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": TENANT_INDEX,
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": partition}},
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if status is not None:
                query["FilterExpression"] = "#status = :status"
                query["ExpressionAttributeNames"] = {"#status": "status"}
                query["ExpressionAttributeValues"][":status"] = {"S": status.value}
            if start_key:
                query["ExclusiveStartKey"] = start_key
            response = self._ddb.query(**query)
            items.extend(item_to_prediction(_from_attrs(a)) for a in response.get("Items", []))
            start_key = response.get("LastEvaluatedKey")
            if not start_key or len(items) >= limit:
                break
        return items, _encode_cursor(start_key) if start_key else None

    # -- batches -------------------------------------------------------------------------------------------------

    def put_batch(self, batch: BatchRecord) -> None:
        item = {
            "pk": f"BATCH#{batch.batch_id}",
            "kind": "batch",
            "batch_id": batch.batch_id,
            "prediction_ids": batch.prediction_ids,
            "input_location": batch.input_location,
            "created_at": _iso(batch.created_at),
            "expires_at": int((batch.created_at + self.retention).timestamp()),
        }
        try:
            self._ddb.put_item(TableName=self.table_name, Item=_to_attrs(item))
        except ClientError as exc:
            raise TransientError("could not record the batch") from exc

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        response = self._ddb.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"BATCH#{batch_id}"}}, ConsistentRead=True
        )
        if "Item" not in response:
            return None
        item = _from_attrs(response["Item"])
        return BatchRecord(
            batch_id=item["batch_id"],
            prediction_ids=list(item["prediction_ids"]),
            input_location=item["input_location"],
            created_at=datetime.fromisoformat(item["created_at"]),
        )

    # -- API keys ------------------------------------------------------------------------------------------------

    def put_api_key(self, key: ApiKey) -> None:
        item = {
            "pk": f"KEY#{key.key_id}",
            "kind": "api_key",
            "key_id": key.key_id,
            "tenant_id": key.tenant_id,
            "secret_hash": key.secret_hash,
            "created_at": _iso(key.created_at),
            "name": key.name,
        }
        self._ddb.put_item(
            TableName=self.table_name, Item=_to_attrs(item), ConditionExpression="attribute_not_exists(pk)"
        )

    def get_api_key(self, key_id: str) -> ApiKey | None:
        response = self._ddb.get_item(TableName=self.table_name, Key={"pk": {"S": f"KEY#{key_id}"}})
        if "Item" not in response:
            return None
        item = _from_attrs(response["Item"])
        return ApiKey(
            key_id=item["key_id"],
            tenant_id=item["tenant_id"],
            secret_hash=item["secret_hash"],
            created_at=datetime.fromisoformat(item["created_at"]),
            revoked_at=_dt(item.get("revoked_at")),
            name=item.get("name"),
        )

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        try:
            self._ddb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"KEY#{key_id}"}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": {"S": _iso(at)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _idempotency_pk(tenant_id: str, key: str) -> str:
    return f"IDEM#{tenant_id}#{key}"


def _encode_cursor(key: Mapping[str, Any]) -> str:
    plain = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or plain.get("gsi1pk") != partition:
            raise ValueError("cursor belongs to another listing")
        if set(plain) != {"pk", "gsi1pk", "gsi1sk"} or not all(isinstance(v, str) for v in plain.values()):
            raise ValueError("unexpected cursor fields")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailedError("invalid cursor", {"field": "cursor"}) from exc
    return {name: {"S": value} for name, value in plain.items()}


@cache
def prediction_store() -> PredictionStore:
    settings = get_settings()
    return PredictionStore(settings.table_name, timedelta(days=settings.record_retention_days))
