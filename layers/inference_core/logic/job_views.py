"""The API's response models for a job, built from `logic.payloads.job_payload` as a prediction's are (`views`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from inference_core.domain.jobs import Job, JobSource, JobStatus
from inference_core.logic.payloads import job_payload
from inference_core.logic.views import ErrorBody, Timestamp

if TYPE_CHECKING:  # the job logic (and its storage) is not needed to build a view
    from inference_core.logic import jobs as job_logic


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


def job_view(job: Job, upload: job_logic.UploadLink | None = None) -> JobOut:
    return JobOut.model_validate(job_payload(job, upload))
