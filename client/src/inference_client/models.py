"""Typed results: what the API's JSON means, as frozen dataclasses. `raw` keeps the JSON as the API sent it."""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from inference_client.errors import ResponseFormatError

ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of a list, newest first; pass `next_cursor` back for the next page."""

    data: list[ItemT]
    next_cursor: str | None

    @staticmethod
    def _items(data: Any) -> list[Any]:
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ResponseFormatError("a list response has no `data` array")
        return items


class _Record:
    """What a prediction and a job share: a status that may be final, and the JSON as the API sent it."""

    status: PredictionStatus | JobStatus
    raw: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def to_dict(self) -> dict[str, Any]:
        """The prediction or job as the API's JSON."""
        return dict(self.raw)


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
    """Why a prediction, a job or one line of a job failed (an `error` object of the API), not an exception."""

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
class Prediction(_Record):
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


class PredictionPage(Page[Prediction]):
    """One page of a list, newest first, without outputs; pass `next_cursor` back for the next page."""

    @classmethod
    def from_api(cls, data: Any) -> PredictionPage:
        items = cls._items(data)
        cursor = data.get("next_cursor")
        return cls([Prediction.from_api(item) for item in items], cursor if isinstance(cursor, str) else None)


@dataclass(frozen=True)
class EmbeddingBatch:
    """The embeddings of `len(embeddings)` consecutive inputs, starting at input `start` (0-based)."""

    start: int
    embeddings: list[list[float]]
    truncated: list[bool]
    prediction_id: str


# -- bulk jobs ---------------------------------------------------------------------------------------------------


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    VALIDATING = "validating"
    VALIDATED = "validated"  # where a dry run ends
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _JOB_TERMINAL


_JOB_TERMINAL = frozenset(
    {JobStatus.VALIDATED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


class JobSource(StrEnum):
    API = "api"  # POST /v1/jobs, then the upload
    INBOX = "inbox"  # a file dropped under inbox/<tenant>/ in the bucket
    RETRY = "retry"  # the failed lines of another job (`parent_id`)


@dataclass(frozen=True)
class JobRequestCounts:
    """Lines of work in the file (blank lines not counted), and how many finished each way. They move chunk by
    chunk; at the end `completed + failed == total`."""

    total: int
    completed: int
    failed: int

    @property
    def processed(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True)
class JobProgress:
    """The API's own reading of the counters: `fraction` done, lines per second since the job started, and the
    seconds it expects the rest to take (None until the first chunk finished)."""

    fraction: float
    items_per_second: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class JobEstimate:
    """What a dry run predicts for the real run (tokens are approximate)."""

    inputs: int
    tokens: int
    endpoint_seconds: float
    cost_usd: float
    eta_seconds: float


@dataclass(frozen=True)
class JobUpload:
    """The presigned request that uploads the job's file (only in the reply that creates the job). It must carry
    exactly `headers` (the signature covers them) and no API key."""

    url: str = field(repr=False)  # holds a signature
    method: str
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class JobLineError:
    """One line the job could not run (the first few are in the job; the error file holds them all)."""

    custom_id: str | None
    line: int
    error: PredictionErrorInfo


@dataclass(frozen=True)
class Job(_Record):
    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    request_counts: JobRequestCounts
    progress: JobProgress
    output_url: str | None = field(repr=False)  # presigned links (15 minutes): they hold a signature
    error_url: str | None = field(repr=False)
    errors: list[JobLineError]
    error: PredictionErrorInfo | None
    metadata: dict[str, str]
    source: JobSource
    input_location: str | None
    parent_id: str | None
    dry_run: bool
    estimate: JobEstimate | None
    upload: JobUpload | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Any) -> Job:
        """The job from the API's JSON. Every documented field is checked for its type: a body of another shape is
        a ResponseFormatError, never a half-read job."""
        if not isinstance(data, dict):
            raise ResponseFormatError("a job is not a JSON object")
        try:
            created_at = _timestamp(data["created_at"])
            if created_at is None:
                raise ValueError("created_at is null")
            counts = _object(data, "request_counts")
            progress = _object(data, "progress")
            estimate = data.get("estimate")
            upload = data.get("upload")
            error = data.get("error")
            errors = data["errors"]
            metadata = _object(data, "metadata")
            if not isinstance(errors, list):
                raise ValueError("errors is not a list")
            if not all(isinstance(v, str) for v in metadata.values()):
                raise ValueError("a metadata value is not a string")
            return cls(
                id=_string(data, "id"),
                status=JobStatus(data["status"]),
                created_at=created_at,
                started_at=_timestamp(data.get("started_at")),
                completed_at=_timestamp(data.get("completed_at")),
                request_counts=JobRequestCounts(
                    _integer(counts, "total"), _integer(counts, "completed"), _integer(counts, "failed")
                ),
                progress=JobProgress(
                    _number(progress, "fraction"),
                    _optional_number(progress, "items_per_second"),
                    _optional_number(progress, "eta_seconds"),
                ),
                output_url=_optional_string(data, "output_url"),
                error_url=_optional_string(data, "error_url"),
                errors=[_line_error(item) for item in errors],
                error=_error_info(error) if error is not None else None,
                metadata=dict(metadata),
                source=JobSource(data["source"]),
                input_location=_optional_string(data, "input_location"),
                parent_id=_optional_string(data, "parent_id"),
                dry_run=_boolean(data, "dry_run"),
                estimate=_estimate(estimate) if estimate is not None else None,
                upload=_upload(upload) if upload is not None else None,
                raw=data,
            )
        except (KeyError, ValueError, TypeError, ResponseFormatError) as exc:
            detail = f"no field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
            raise ResponseFormatError(f"unexpected job shape: {detail}") from exc


class JobPage(Page[Job]):
    """One page of `GET /v1/jobs`, newest first; pass `next_cursor` back for the next page."""

    @classmethod
    def from_api(cls, data: Any) -> JobPage:
        items = cls._items(data)
        cursor = data.get("next_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise ResponseFormatError("next_cursor is neither a string nor null")
        return cls([Job.from_api(item) for item in items], cursor)


@dataclass(frozen=True)
class JobDownload:
    """What `jobs.download` did: the job as last read (renewing an expired link reads it again) and the files it
    wrote, None where a file was not asked for or the job has none (a job that failed as a whole, a dry run without
    invalid lines)."""

    job: Job
    output: Path | None
    errors: Path | None


# Strict readers for the job's JSON: a wrong type raises ValueError (or KeyError when missing), which `from_api`
# turns into ResponseFormatError. `bool` is refused where a number is expected (it is an int in Python).


def _object(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data[name]
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not an object")
    return value


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _optional_string(data: Mapping[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else _string(data, name)


def _integer(data: Mapping[str, Any], name: str) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} is not an integer")
    return value


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number")
    return float(value)


def _optional_number(data: Mapping[str, Any], name: str) -> float | None:
    return None if data.get(name) is None else _number(data, name)


def _boolean(data: Mapping[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} is not a boolean")
    return value


def _error_info(value: Any) -> PredictionErrorInfo:
    if not isinstance(value, dict):
        raise ValueError("error is not an object")
    return PredictionErrorInfo(_string(value, "code"), _string(value, "message"))


def _line_error(value: Any) -> JobLineError:
    if not isinstance(value, dict):
        raise ValueError("an item of errors is not an object")
    return JobLineError(_optional_string(value, "custom_id"), _integer(value, "line"), _error_info(value["error"]))


def _estimate(value: Any) -> JobEstimate:
    if not isinstance(value, dict):
        raise ValueError("estimate is not an object")
    return JobEstimate(
        inputs=_integer(value, "inputs"),
        tokens=_integer(value, "tokens"),
        endpoint_seconds=_number(value, "endpoint_seconds"),
        cost_usd=_number(value, "cost_usd"),
        eta_seconds=_number(value, "eta_seconds"),
    )


def _upload(value: Any) -> JobUpload:
    if not isinstance(value, dict):
        raise ValueError("upload is not an object")
    headers = _object(value, "headers")
    if not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("an upload header is not a string")
    expires_at = _timestamp(value["expires_at"])
    if expires_at is None:
        raise ValueError("upload.expires_at is null")
    return JobUpload(_string(value, "url"), _string(value, "method"), dict(headers), expires_at)
