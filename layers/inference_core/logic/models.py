"""Domain records: what a prediction, a batch and a work item are, independent of HTTP and storage."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utc_now() -> datetime:
    return datetime.now(UTC)


class PredictionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {PredictionStatus.SUCCEEDED, PredictionStatus.FAILED, PredictionStatus.CANCELLED, PredictionStatus.EXPIRED}
)

# The state machine: for each target status, the statuses it may be reached from. Nothing ever leaves a terminal one.
ALLOWED_SOURCES: dict[PredictionStatus, frozenset[PredictionStatus]] = {
    PredictionStatus.RUNNING: frozenset({PredictionStatus.QUEUED}),
    PredictionStatus.SUCCEEDED: frozenset({PredictionStatus.RUNNING}),
    PredictionStatus.FAILED: frozenset({PredictionStatus.QUEUED, PredictionStatus.RUNNING}),
    PredictionStatus.CANCELLED: frozenset({PredictionStatus.QUEUED, PredictionStatus.RUNNING}),
    PredictionStatus.EXPIRED: frozenset({PredictionStatus.QUEUED}),
}


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    message: str


def error_fields(code: str, message: str) -> dict[str, str]:
    """The status-record fields that say why a prediction failed (messages are capped: they may echo input)."""
    return {"error_code": code, "error_message": message[:1000]}


class PredictionMetrics(BaseModel):
    queue_ms: int | None = None
    inference_ms: int | None = None


class Prediction(BaseModel):
    id: str
    tenant_id: str
    status: PredictionStatus
    created_at: datetime
    input_count: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    batch_id: str | None = None
    output: dict[str, Any] | None = None
    # Set instead of `output` when the output was too large for the status record.
    output_location: str | None = None
    error: ErrorInfo | None = None
    metrics: PredictionMetrics = Field(default_factory=PredictionMetrics)


class NewPrediction(BaseModel):
    """What a client asked for, after validation."""

    inputs: list[str]
    parameters: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook: str | None = None


class WorkItem(BaseModel):
    """The request-queue message: everything the dispatcher needs without reading the status record's inputs."""

    prediction_id: str = Field(min_length=1)
    tenant_id: str = Field(min_length=1)
    created_at: datetime
    inputs: list[str] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class BatchLine(BaseModel):
    """One line of a batch input object: one prediction for the model."""

    id: str
    inputs: list[str]
    parameters: dict[str, Any] = Field(default_factory=dict)


class BatchRecord(BaseModel):
    batch_id: str
    prediction_ids: list[str]
    input_location: str
    created_at: datetime


class ResultLine(BaseModel):
    """One line of a batch output object, as the model container writes it."""

    id: str | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class InvocationStatus(StrEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"


class _RequestParameters(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    input_location: str | None = Field(default=None, alias="inputLocation")


class _ResponseParameters(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    output_location: str | None = Field(default=None, alias="outputLocation")
    failure_location: str | None = Field(default=None, alias="failureLocation")


class AsyncInferenceNotification(BaseModel):
    """SageMaker's asynchronous-inference SNS notification (success and error topics share the shape)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    invocation_status: InvocationStatus = Field(alias="invocationStatus")
    inference_id: str = Field(alias="inferenceId", min_length=1)
    failure_reason: str | None = Field(default=None, alias="failureReason")
    request_parameters: _RequestParameters = Field(default_factory=_RequestParameters, alias="requestParameters")
    response_parameters: _ResponseParameters = Field(default_factory=_ResponseParameters, alias="responseParameters")


class ApiKey(BaseModel):
    key_id: str
    tenant_id: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    name: str | None = None


class Page(BaseModel):
    items: list[Prediction]
    next_cursor: str | None = None
