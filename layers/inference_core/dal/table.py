"""The one DynamoDB table every item kind shares (string hash key `pk`), and its attribute encoding."""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import conflicted, translate
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


class Update:
    """One UpdateItem, built clause by clause: its update and condition expressions and their placeholders. Every
    attribute name and value goes through a placeholder, so no reserved word or odd character can break it."""

    def __init__(self) -> None:
        self._clauses: dict[str, list[str]] = {"SET": [], "REMOVE": [], "ADD": [], "DELETE": []}
        self._conditions: list[str] = []
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        """The placeholder of an attribute name (a dotted path names a map entry: `chunks_running.3`)."""
        parts = []
        for part in attribute.split("."):
            placeholder = next((k for k, v in self._names.items() if v == part), None)
            if placeholder is None:
                placeholder = f"#n{len(self._names)}"
                self._names[placeholder] = part
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> Update:
        self._clauses["SET"].append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def remove(self, *attributes: str) -> Update:
        self._clauses["REMOVE"] += [self.name(a) for a in attributes]
        return self

    def add(self, attribute: str, value: Any) -> Update:
        """A number added, or elements added to a set (created if absent)."""
        self._clauses["ADD"].append(f"{self.name(attribute)} {self.value(value)}")
        return self

    def delete(self, attribute: str, elements: Iterable[str]) -> Update:
        """Elements taken out of a set (the set goes when it is empty)."""
        self._clauses["DELETE"].append(f"{self.name(attribute)} {self.value(frozenset(elements))}")
        return self

    def when(self, condition: str) -> Update:
        """Another condition, ANDed with the others; build its placeholders with `name` and `value`."""
        self._conditions.append(f"({condition})")
        return self

    def when_in(self, attribute: str, values: Iterable[str]) -> Update:
        placeholders = ", ".join(self.value(v) for v in sorted(values))
        return self.when(f"{self.name(attribute)} IN ({placeholders})")

    def request(self) -> dict[str, Any]:
        """The UpdateItem arguments these make (without table and key)."""
        expression = " ".join(f"{verb} {', '.join(parts)}" for verb, parts in self._clauses.items() if parts)
        request: dict[str, Any] = {"UpdateExpression": expression, "ExpressionAttributeNames": dict(self._names)}
        if self._values:
            request["ExpressionAttributeValues"] = to_attrs(self._values)
        if self._conditions:
            request["ConditionExpression"] = " AND ".join(self._conditions)
        return request


class Table:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def client(self) -> DynamoDBClient:
        return dynamodb()

    def batch_get(
        self, pks: Iterable[str], what: str, consistent: bool = True, attributes: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The items of these keys (missing ones left out; only `attributes` of them when given): BatchGetItem in
        chunks of 100, retrying unprocessed keys a handful of rounds. `what` names them in errors ("predictions")."""
        keys = list(dict.fromkeys(pks))
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            read = [(self, keys[start : start + BATCH_GET_LIMIT], consistent)]
            found += batch_get_across(read, what, attributes)[0]
        return found


def batch_get_across(
    reads: Sequence[tuple[Table, Sequence[str], bool]], what: str, attributes: Sequence[str] = ()
) -> list[list[dict[str, Any]]]:
    """One BatchGetItem over several tables (at most 100 keys in all), each with its own consistency: the items
    found, per table in the order given. Retries unprocessed keys a handful of rounds."""
    if sum(len(pks) for _, pks, _ in reads) > BATCH_GET_LIMIT:
        raise ValueError(f"one BatchGetItem reads at most {BATCH_GET_LIMIT} keys")
    projection: dict[str, Any] = {}
    if attributes:
        names = {f"#p{i}": name for i, name in enumerate(attributes)}
        projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    request: Mapping[str, Any] = {
        table.name: {"Keys": [key(pk) for pk in dict.fromkeys(pks)], "ConsistentRead": consistent, **projection}
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


def without_events(update: Update, sent: set[str]) -> Update:
    """Take `sent` off the outbox, on the condition that nothing else is on it."""
    if not sent:
        return update.when("attribute_not_exists(outbox)")
    outbox = update.name("outbox")
    contains = " AND ".join(f"contains({outbox}, {update.value(event)})" for event in sorted(sent))
    update.delete("outbox", sent)
    return update.when(f"attribute_not_exists({outbox}) OR (size({outbox}) = {update.value(len(sent))} AND {contains})")


# A cancelled transaction on a hot item (the chunk gate, which every chunk's claim and finish touch) is sent again
# this many times in all, after a short random pause: botocore retries throttling, not these conflicts.
TRANSACTION_ATTEMPTS = 4


def transact_write(client: Any, items: list[dict[str, Any]], sleep: Any = time.sleep) -> None:
    """TransactWriteItems, sent again when DynamoDB cancelled it for a conflict alone (it then had no effect).
    Any other error, a failed condition included, is raised as botocore raised it."""
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            client.transact_write_items(TransactItems=items)
            return
        except ClientError as exc:
            if attempt + 1 >= TRANSACTION_ATTEMPTS or not conflicted(exc):
                raise
            sleep(random.uniform(0.01, 0.04) * 2**attempt)
