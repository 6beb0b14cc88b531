"""Time as every record stores and shows it: timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339, UTC, milliseconds: the one way every timestamp is written and shown."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
