"""Checked reads and compact writes of the JSON documents the consumers exchange (queue messages, batch lines,
model output, endpoint notifications), without pydantic.

Every consumer handles these on its cold path; pydantic's core and the model builds it needs came to about a third
of a consumer's cold start, so these records are dataclasses read through the few checks below. A check that fails
raises `InvalidDocument` naming the field; unknown keys are ignored, as the pydantic models did."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any


class InvalidDocument(ValueError):
    """A document that is not JSON or lacks the shape its reader needs."""


def load_object(raw: str | bytes | bytearray) -> dict[str, Any]:
    """One JSON object; anything else (invalid UTF-8 or JSON, a non-object, nesting too deep) is refused."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidDocument("not a JSON document") from exc
    return as_object(document, "document")


def as_object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidDocument(f"{name} is not an object")
    return value


def dump(document: Mapping[str, Any]) -> str:
    """Compact JSON with text as UTF-8 rather than escapes, as the model container and the queue read it."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _checked_text(value: str, name: str) -> str:
    try:  # a lone surrogate parses from a JSON escape but cannot be written anywhere again
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidDocument(f"{name} is not valid Unicode text") from exc
    return value


def text(document: Mapping[str, Any], name: str, *, min_length: int = 0) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise InvalidDocument(f"{name} is missing or not a string")
    if len(value) < min_length:
        raise InvalidDocument(f"{name} is empty")
    return _checked_text(value, name)


def optional_text(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidDocument(f"{name} is not a string")
    return _checked_text(value, name)


def texts(
    document: Mapping[str, Any], name: str, *, min_length: int = 0, default: list[str] | None = None
) -> list[str]:
    value = document.get(name, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidDocument(f"{name} is missing or not a list of strings")
    if len(value) < min_length:
        raise InvalidDocument(f"{name} has fewer than {min_length} items")
    _checked_text("".join(value), name)
    return list(value)


def optional_object(document: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = document.get(name)
    return None if value is None else as_object(value, name)


def object_or_empty(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An object that defaults to {} when absent (null is not an object)."""
    return as_object(document.get(name, {}), name)


def timestamp(document: Mapping[str, Any], name: str) -> datetime:
    value = document.get(name)
    if not isinstance(value, str):
        raise InvalidDocument(f"{name} is missing or not a timestamp")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidDocument(f"{name} is not an ISO 8601 timestamp") from exc
