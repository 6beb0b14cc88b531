"""The one DynamoDB table every item kind shares (string hash key `pk`), and its attribute encoding."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from inference_core.dal.clients import dynamodb

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


class Table:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def client(self) -> DynamoDBClient:
        return dynamodb()


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
