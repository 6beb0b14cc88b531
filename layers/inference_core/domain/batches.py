"""What travels between the queue, the endpoint and completion: work items, batch lines, results, notifications."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from inference_core.domain.predictions import ErrorInfo


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
    # The result cache's answers for this batch, if any: predictions answered whole (finished by the dispatcher
    # right after the invocation; `answered_ids`) and in part (completion fills their gaps; `partial_hits`).
    hits_location: str | None = None
    answered_ids: list[str] = Field(default_factory=list)
    partial_hits: bool = False
    # prediction id -> the cache keys of the texts sent to the model, in order: what completion writes back.
    fill_keys: dict[str, list[str]] = Field(default_factory=dict)


class ResultLine(BaseModel):
    """One line of a batch output object, as the model container writes it."""

    id: str | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class LocatedResult(BaseModel):
    """A result line and where it sits in the batch output object (bytes [start, end], inclusive), or in the
    object at `location` when that is set."""

    line: ResultLine
    start: int
    end: int
    location: str | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def output(self) -> dict[str, Any] | None:
        return self.line.output

    @property
    def error(self) -> ErrorInfo | None:
        return self.line.error


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


# A bulk job's chunk is invoked as `<job id>-<chunk>`, job ids start with this; interactive batch ids are UUIDs.
JOB_PREFIX = "job_"


def is_job_chunk(inference_id: str) -> bool:
    """A notification for a job chunk rather than an interactive batch (told apart before any job code loads)."""
    return inference_id.startswith(JOB_PREFIX)
