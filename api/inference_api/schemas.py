"""HTTP request and response schemas of API v1 (the public contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictBool, WithJsonSchema, field_validator

from inference_core.domain.clock import format_timestamp
from inference_core.domain.inputs import MAX_INPUT_CHARS, MAX_INPUTS, EmbeddingParameters, checked_texts
from inference_core.domain.jobs import JobSource, JobStatus
from inference_core.domain.predictions import NewPrediction, Prediction, PredictionStatus

# Keeps a whole request inside one SQS message (256 KiB) with room for the envelope.
MAX_BODY_BYTES = 200 * 1024
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_WEBHOOK_CHARS = 2_048
MAX_WAIT_SECONDS = 20


# RFC 3339, UTC, milliseconds (2026-11-23T11:23:24.760Z) on every timestamp the API returns.
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-11-23T11:23:24.760Z"}),
]


class _Labelled(BaseModel):
    """What predictions and jobs both carry: the caller's labels and a webhook."""

    model_config = ConfigDict(extra="forbid")

    metadata: Annotated[
        dict[str, str] | None,
        WithJsonSchema(
            {
                "type": "object",
                "maxProperties": MAX_METADATA_ENTRIES,
                "propertyNames": {"minLength": 1, "maxLength": MAX_METADATA_KEY_CHARS},
                "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
            }
        ),
    ] = Field(default=None, description="Your own labels, returned with the prediction or job.")
    webhook: str | None = Field(
        default=None,
        max_length=MAX_WEBHOOK_CHARS,
        description="An https:// URL called when it finishes.",
        json_schema_extra={"format": "uri", "pattern": "^https://[^/?#\\s]+"},
    )

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return value
        if len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"metadata holds at most {MAX_METADATA_ENTRIES} entries")
        for key, item in value.items():
            if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
                raise ValueError(f"metadata keys are 1..{MAX_METADATA_KEY_CHARS} characters")
            if len(item) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"metadata values are at most {MAX_METADATA_VALUE_CHARS} characters")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parsed = urlparse(value)
        if len(value) > MAX_WEBHOOK_CHARS or parsed.scheme != "https" or not parsed.hostname:
            raise ValueError("webhook must be an https:// URL")
        return value


class PredictionCreate(_Labelled):
    inputs: Annotated[
        str | list[str],
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
                    {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_INPUT_CHARS},
                        "minItems": 1,
                        "maxItems": MAX_INPUTS,
                    },
                ]
            }
        ),
    ] = Field(
        description=f"One text, or 1..{MAX_INPUTS} texts of 1..{MAX_INPUT_CHARS} characters, each with at least one "
        "non-whitespace character. The whole body stays under 200 KiB."
    )
    parameters: EmbeddingParameters | None = Field(default=None, description="Model parameters.")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: str | list[str]) -> list[str]:
        return checked_texts(value)

    def to_domain(self) -> NewPrediction:
        inputs = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        # Only what the client set: the model keeps its own defaults for the rest.
        parameters = self.parameters.model_dump(exclude_unset=True) if self.parameters else {}
        return NewPrediction(inputs=inputs, parameters=parameters, metadata=self.metadata or {}, webhook=self.webhook)


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


class PredictionList(BaseModel):
    data: list[PredictionOut]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | list[Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


# -- jobs -------------------------------------------------------------------------------------------------------------


class JobCreate(_Labelled):
    dry_run: StrictBool = Field(
        default=False,
        description="Validate the file and estimate the run (inputs, tokens, endpoint time and cost, ETA) without "
        "running anything: the job ends `validated`.",
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


class JobList(BaseModel):
    data: list[JobOut]
    next_cursor: str | None
