"""The one DynamoDB table every item kind shares (string hash key `pk`), and its attribute encoding."""

from __future__ import annotations

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
