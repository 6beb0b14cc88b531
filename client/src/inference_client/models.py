"""Typed results: what the API's JSON means, as frozen dataclasses. `raw` keeps the JSON as the API sent it."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from inference_client.errors import ResponseFormatError


class PredictionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self not in (PredictionStatus.QUEUED, PredictionStatus.RUNNING)


@dataclass(frozen=True)
class PredictionMetrics:
    queue_ms: int | None
    inference_ms: int | None


@dataclass(frozen=True)
class PredictionErrorInfo:
    """Why a prediction failed (its `error`), not an exception."""

    code: str
    message: str


@dataclass(frozen=True)
class EmbeddingOutput:
    """The embedding model's output: one vector per input, in input order. base64 vectors are decoded."""

    model: str
    dimensions: int
    embeddings: list[list[float]]
    truncated: list[bool]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> EmbeddingOutput:
        raw = data.get("embeddings")
        if not isinstance(raw, list):
            raise ResponseFormatError("the prediction's output has no `embeddings` list")
        embeddings = [decode_embedding(item) for item in raw]
        truncated = data.get("truncated")
        dimensions = data.get("dimensions")
        return cls(
            model=str(data.get("model") or ""),
            dimensions=int(dimensions) if isinstance(dimensions, int) else len(embeddings[0]) if embeddings else 0,
            embeddings=embeddings,
            truncated=[bool(t) for t in truncated] if isinstance(truncated, list) else [False] * len(embeddings),
        )


def decode_embedding(item: Any) -> list[float]:
    """A vector as a list of floats, from JSON numbers or from base64 of little-endian float32."""
    if isinstance(item, list):
        return [float(v) for v in item]
    if isinstance(item, str):
        try:
            data = base64.b64decode(item, validate=True)
        except binascii.Error as exc:
            raise ResponseFormatError("an embedding is not valid base64") from exc
        if len(data) % 4:
            raise ResponseFormatError("a base64 embedding is not a whole number of float32 values")
        return list(struct.unpack(f"<{len(data) // 4}f", data))
    raise ResponseFormatError("an embedding is neither a list of numbers nor a base64 string")


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResponseFormatError(f"not a timestamp: {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ResponseFormatError(f"not a timestamp: {value!r}") from exc


@dataclass(frozen=True)
class Prediction:
    id: str
    status: PredictionStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    input_count: int
    metadata: dict[str, str]
    output: EmbeddingOutput | None
    output_url: str | None
    error: PredictionErrorInfo | None
    metrics: PredictionMetrics
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @classmethod
    def from_api(cls, data: Any) -> Prediction:
        if not isinstance(data, dict):
            raise ResponseFormatError("a prediction is not a JSON object")
        try:
            status = PredictionStatus(data["status"])
            created_at = _timestamp(data["created_at"])
            if created_at is None:
                raise ValueError("created_at is null")
            error = data.get("error")
            output = data.get("output")
            metrics = data.get("metrics") or {}
            return cls(
                id=str(data["id"]),
                status=status,
                created_at=created_at,
                started_at=_timestamp(data.get("started_at")),
                completed_at=_timestamp(data.get("completed_at")),
                input_count=int(data.get("input_count") or 0),
                metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
                output=EmbeddingOutput.from_api(output) if isinstance(output, dict) else None,
                output_url=data.get("output_url"),
                error=PredictionErrorInfo(str(error.get("code", "")), str(error.get("message", "")))
                if isinstance(error, dict)
                else None,
                metrics=PredictionMetrics(metrics.get("queue_ms"), metrics.get("inference_ms")),
                raw=data,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ResponseFormatError(f"unexpected prediction shape: {exc}") from exc

    def with_output(self, output: dict[str, Any]) -> Prediction:
        """This prediction with its output filled in (as read from `output_url`)."""
        return Prediction.from_api({**self.raw, "output": output})

    def to_dict(self) -> dict[str, Any]:
        """The prediction as the API's JSON."""
        return dict(self.raw)


@dataclass(frozen=True)
class PredictionPage:
    """One page of a list, newest first, without outputs; pass `next_cursor` back for the next page."""

    data: list[Prediction]
    next_cursor: str | None

    @classmethod
    def from_api(cls, data: Any) -> PredictionPage:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ResponseFormatError("a list response has no `data` array")
        cursor = data.get("next_cursor")
        return cls([Prediction.from_api(item) for item in data["data"]], cursor if isinstance(cursor, str) else None)


@dataclass(frozen=True)
class EmbeddingBatch:
    """The embeddings of `len(embeddings)` consecutive inputs, starting at input `start` (0-based)."""

    start: int
    embeddings: list[list[float]]
    truncated: list[bool]
    prediction_id: str
