"""The API's response models for a prediction or a job: they document in OpenAPI, and are built from, the one
JSON definition in `logic.payloads` that webhooks deliver as their `data`, so the two never drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

from inference_core.domain.clock import format_timestamp
from inference_core.domain.jobs import Job, JobSource, JobStatus
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.logic.payloads import job_payload, prediction_payload, prediction_with_output

if TYPE_CHECKING:  # the job logic (and its storage) is not needed to build a view
    from inference_core.logic import jobs as job_logic

# RFC 3339, UTC, milliseconds (2026-11-23T11:23:24.760Z) on every timestamp the API returns.
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-11-23T11:23:24.760Z"}),
]


class ErrorBody(BaseModel):
    code: str
    message: str


class MetricsOut(BaseModel):
    queue_ms: int | None
    inference_ms: int | None


class PredictionOut(BaseModel):
    id: str
    status: PredictionStatus
    created_at: Timestamp
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    input_count: int
    metadata: dict[str, str]
    output: dict[str, Any] | None = None
    output_url: str | None = Field(default=None, description="Presigned link to an output too large to inline.")
    error: ErrorBody | None = None
    metrics: MetricsOut

    @classmethod
    def from_domain(
        cls, prediction: Prediction, output: dict[str, Any] | None = None, output_url: str | None = None
    ) -> PredictionOut:
        return cls.model_validate(prediction_payload(prediction, output, output_url))


class RequestCounts(BaseModel):
    total: int = Field(description="Lines of work in the file (blank lines are not counted).")
    completed: int
    failed: int = Field(description="Invalid lines, lines the model failed, and lines that never ran.")


class ProgressOut(BaseModel):
    fraction: float
    items_per_second: float | None = Field(description="Lines finished per second since the job started.")
    eta_seconds: float | None


class LineErrorOut(BaseModel):
    custom_id: str | None
    line: int
    error: ErrorBody


class EstimateOut(BaseModel):
    inputs: int
    tokens: int = Field(description="Approximate (word pieces counted without the model's tokenizer).")
    endpoint_seconds: float = Field(description="At the configured endpoint throughput (items/s per instance).")
    cost_usd: float = Field(description="Endpoint instance time at the configured hourly price.")
    eta_seconds: float


class UploadOut(BaseModel):
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(description="Send these headers with the PUT (the URL is signed with them).")
    expires_at: Timestamp


class JobOut(BaseModel):
    id: str
    status: JobStatus
    created_at: Timestamp
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    request_counts: RequestCounts
    progress: ProgressOut
    output_url: str | None = Field(default=None, description="Presigned link to the output file, once written.")
    error_url: str | None = Field(default=None, description="Presigned link to the error file, once written.")
    errors: list[LineErrorOut] = Field(description="The first few invalid lines; the error file holds them all.")
    error: ErrorBody | None = Field(default=None, description="Why the whole job failed (an unusable file).")
    metadata: dict[str, str]
    source: JobSource
    input_location: str | None = Field(default=None, description="For inbox jobs: the file that started the job.")
    parent_id: str | None = None
    dry_run: bool
    estimate: EstimateOut | None = Field(
        default=None, description="What the run costs at the configured endpoint throughput and price (dry runs too)."
    )
    upload: UploadOut | None = Field(
        default=None, description="While the job waits for its file: where to PUT it (a fresh link on every read)."
    )


def prediction_view(prediction: Prediction, with_output: bool = True) -> PredictionOut:
    if not with_output:
        return PredictionOut.from_domain(prediction)
    return PredictionOut.model_validate(prediction_with_output(prediction))


def job_view(job: Job, upload: job_logic.UploadLink | None = None) -> JobOut:
    return JobOut.model_validate(job_payload(job, upload))
