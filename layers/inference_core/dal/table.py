"""The one DynamoDB table every item kind shares (string hash key `pk`), and its attribute encoding."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import dynamodb
from inference_core.errors import TransientError

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attrs(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in attrs.items()}


def iso(value: datetime | None) -> str | None:
    """RFC 3339, UTC, milliseconds: the one timestamp format of every record."""
    return value.isoformat(timespec="milliseconds") if value else None


def parse_dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


BATCH_GET_LIMIT = 100


class Table:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def client(self) -> DynamoDBClient:
        return dynamodb()

    def batch_get(self, pks: Iterable[str], what: str, consistent: bool = True) -> list[dict[str, Any]]:
        """The items of these keys (missing ones left out): BatchGetItem in chunks of 100, retrying unprocessed keys
        a handful of rounds. `what` names them in errors ("predictions")."""
        keys = list(dict.fromkeys(pks))
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            found += batch_get_across([(self, keys[start : start + BATCH_GET_LIMIT], consistent)], what)[0]
        return found


def batch_get_across(reads: Sequence[tuple[Table, Sequence[str], bool]], what: str) -> list[list[dict[str, Any]]]:
    """One BatchGetItem over several tables (at most 100 keys in all), each with its own consistency: the items
    found, per table in the order given. Retries unprocessed keys a handful of rounds."""
    if sum(len(pks) for _, pks, _ in reads) > BATCH_GET_LIMIT:
        raise ValueError(f"one BatchGetItem reads at most {BATCH_GET_LIMIT} keys")
    request: Mapping[str, Any] = {
        table.name: {"Keys": [key(pk) for pk in dict.fromkeys(pks)], "ConsistentRead": consistent}
        for table, pks, consistent in reads
        if pks
    }
    found: dict[str, list[dict[str, Any]]] = {table.name: [] for table, _, _ in reads}
    client = reads[0][0].client
    for attempt in range(5):
        if not request:
            break
        if attempt:
            time.sleep(0.05 * 2**attempt)  # throttled: back off before asking for the unprocessed rest
        try:
            response = client.batch_get_item(RequestItems=request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"could not read {what}") from exc
        for name, items in response.get("Responses", {}).items():
            found[name] += [from_attrs(attrs) for attrs in items]
        request = response.get("UnprocessedKeys") or {}
    if request:
        raise TransientError("DynamoDB left keys unprocessed", reason="unprocessed keys")
    return [found[table.name] for table, _, _ in reads]


# List cursors are the index's LastEvaluatedKey, opaque to clients and checked to belong to the listing they name.
CURSOR_KEYS = ("pk", "gsi1pk", "gsi1sk")


class InvalidCursor(ValueError):
    """A list cursor that this listing did not hand out."""


def encode_cursor(start_key: Mapping[str, Any]) -> str:
    plain = {name: value["S"] for name, value in start_key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or plain.get("gsi1pk") != partition:
            raise ValueError("cursor belongs to another listing")
        if set(plain) != set(CURSOR_KEYS) or not all(isinstance(v, str) for v in plain.values()):
            raise ValueError("unexpected cursor fields")
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    return {name: {"S": value} for name, value in plain.items()}
