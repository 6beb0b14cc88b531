"""HTTP request and response schemas of API v1 (the public contract)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema, field_validator

from inference_core.dal.http import BlockedUrl
from inference_core.domain.inputs import MAX_INPUT_CHARS, MAX_INPUTS, checked_texts
from inference_core.domain.predictions import NewPrediction
from inference_core.logic.views import BUILT_ON_FIRST_USE, PredictionOut, Timestamp
from inference_core.logic.webhooks import check_url

# The response shapes are defined with the views in the layer (webhooks deliver the same); re-exported here.
# A job's (logic.job_views) are imported by the job routes alone.
__all__ = ["PredictionOut", "Timestamp"]

MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_WEBHOOK_CHARS = 2_048
MAX_WAIT_SECONDS = 20


class EmbeddingParameters(BaseModel):
    """What the embedding model really supports; any other name is refused."""

    model_config = ConfigDict(extra="forbid")

    normalize: StrictBool = Field(
        default=True, description="L2-normalise each embedding (cosine similarity = dot product). false: raw pooling."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="`float`: arrays of numbers. `base64`: each embedding as base64 of little-endian float32 "
        "(about 3x smaller responses).",
    )
    cache: StrictBool = Field(
        default=True,
        description="false: neither served from nor stored in the result cache (the same as the header "
        "`Cache-Control: no-store`). Cached results equal fresh ones bit for bit.",
    )


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
        description="An https:// URL (port 443 unless the deployment allows others, no credentials) called with a "
        "signed event when it finishes; internal addresses are refused.",
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
        # The same rules as at send time, less DNS (checked again, with the resolved addresses, on every delivery).
        if value is not None:
            try:
                check_url(value)
            except BlockedUrl as exc:
                raise ValueError(f"webhook: {exc}") from exc
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
    webhook_events_filter: list[Literal["completed", "started"]] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description='Events sent to `webhook`: "completed" (default: every terminal status) and optionally "started".',
    )

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: str | list[str]) -> list[str]:
        return checked_texts(value)

    def to_domain(self) -> NewPrediction:
        inputs = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        # Only what the client set: the model keeps its own defaults for the rest.
        parameters = self.parameters.model_dump(exclude_unset=True) if self.parameters else {}
        return NewPrediction(
            inputs=inputs,
            parameters=parameters,
            metadata=self.metadata or {},
            webhook=self.webhook,
            webhook_events=sorted(set(self.webhook_events_filter or ["completed"])),
        )


class PredictionList(BaseModel):
    data: list[PredictionOut]
    next_cursor: str | None


class ErrorDetail(BaseModel):
    model_config = BUILT_ON_FIRST_USE  # documented only: the error handlers write it

    code: str
    message: str
    details: dict[str, Any] | list[Any] | None = None


class ErrorResponse(BaseModel):
    model_config = BUILT_ON_FIRST_USE  # documented only: the error handlers write it

    error: ErrorDetail


# -- jobs -------------------------------------------------------------------------------------------------------------


class JobCreate(_Labelled):
    model_config = BUILT_ON_FIRST_USE

    webhook_events_filter: list[Literal["completed", "progress"]] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description='Events sent to `webhook`: "completed" (default) and optionally "progress" (at most one every '
        "30 s per job).",
    )
    dry_run: StrictBool = Field(
        default=False,
        description="Validate the file and estimate the run (inputs, tokens, endpoint time and cost, ETA) without "
        "running anything: the job ends `validated`.",
    )
