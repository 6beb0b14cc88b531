"""What the API returns for a prediction or a job, and what a webhook delivers as its `data`: one definition, so
the two never drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

from inference_core.dal.objects import object_store
from inference_core.domain.clock import format_timestamp
from inference_core.domain.jobs import Job, JobSource, JobStatus
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.logic import jobs as job_logic
from inference_core.logic.predictions import output_for, output_url

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
        return cls(
            id=prediction.id,
            status=prediction.status,
            created_at=prediction.created_at,
            started_at=prediction.started_at,
            completed_at=prediction.completed_at,
            input_count=prediction.input_count,
            metadata=prediction.metadata,
            output=output,
            output_url=output_url,
            error=ErrorBody(code=prediction.error.code, message=prediction.error.message) if prediction.error else None,
            metrics=MetricsOut(queue_ms=prediction.metrics.queue_ms, inference_ms=prediction.metrics.inference_ms),
        )


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
    return PredictionOut.from_domain(prediction, output_for(prediction), output_url(prediction))


def job_view(job: Job, upload: job_logic.UploadLink | None = None) -> JobOut:
    progress = job_logic.progress(job)
    result_output_url, error_url = job_logic.result_urls(job)
    estimate = job.estimate
    return JobOut(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        request_counts=RequestCounts(total=job.total, completed=job.completed, failed=job.failed),
        progress=ProgressOut(
            fraction=progress.fraction, items_per_second=progress.items_per_second, eta_seconds=progress.eta_seconds
        ),
        output_url=result_output_url,
        error_url=error_url,
        errors=[
            LineErrorOut(
                custom_id=e.custom_id, line=e.line, error=ErrorBody(code=e.error.code, message=e.error.message)
            )
            for e in job.errors
        ],
        error=ErrorBody(code=job.error.code, message=job.error.message) if job.error else None,
        metadata=job.metadata,
        source=job.source,
        input_location=object_store().uri(job.input_key) if job.source is JobSource.INBOX else None,
        parent_id=job.parent_id,
        dry_run=job.dry_run,
        estimate=EstimateOut(**estimate.__dict__) if estimate else None,
        upload=UploadOut(url=upload.url, headers=upload.headers, expires_at=upload.expires_at) if upload else None,
    )
