"""HTTP request and response schemas of API v1 (the public contract)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference_core.logic.models import NewPrediction, Prediction, PredictionStatus

MAX_INPUTS = 256
MAX_INPUT_CHARS = 8_192
# Keeps a whole request inside one SQS message (256 KiB) with room for the envelope.
MAX_BODY_BYTES = 200 * 1024
MAX_PARAMETERS_BYTES = 4_096
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_WEBHOOK_CHARS = 2_048
MAX_WAIT_SECONDS = 20


class PredictionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(
        description=f"One text, or 1..{MAX_INPUTS} texts of up to {MAX_INPUT_CHARS} characters."
    )
    parameters: dict[str, Any] | None = Field(default=None, description="Model parameters, passed to the model as is.")
    metadata: dict[str, str] | None = Field(default=None, description="Your own labels, returned with the prediction.")
    webhook: str | None = Field(default=None, description="An https:// URL (stored with the prediction).")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: str | list[str]) -> list[str]:
        texts = [value] if isinstance(value, str) else value
        if not 1 <= len(texts) <= MAX_INPUTS:
            raise ValueError(f"inputs must hold between 1 and {MAX_INPUTS} texts")
        for index, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"inputs[{index}] is empty")
            if len(text) > MAX_INPUT_CHARS:
                raise ValueError(f"inputs[{index}] is longer than {MAX_INPUT_CHARS} characters")
        return texts

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_PARAMETERS_BYTES:
            raise ValueError(f"parameters must serialise to at most {MAX_PARAMETERS_BYTES} bytes")
        return value

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

    def to_domain(self) -> NewPrediction:
        inputs = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        return NewPrediction(
            inputs=inputs, parameters=self.parameters or {}, metadata=self.metadata or {}, webhook=self.webhook
        )


class ErrorBody(BaseModel):
    code: str
    message: str


class MetricsOut(BaseModel):
    queue_ms: int | None
    inference_ms: int | None


class PredictionOut(BaseModel):
    id: str
    status: PredictionStatus
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    input_count: int
    metadata: dict[str, str]
    output: dict[str, Any] | None = None
    output_url: str | None = Field(default=None, description="Presigned link to an output too large to inline.")
    error: ErrorBody | None = None
    metrics: MetricsOut

    @classmethod
    def from_domain(cls, prediction: Prediction, output_url: str | None = None) -> PredictionOut:
        return cls(
            id=prediction.id,
            status=prediction.status,
            created_at=prediction.created_at,
            started_at=prediction.started_at,
            completed_at=prediction.completed_at,
            input_count=prediction.input_count,
            metadata=prediction.metadata,
            output=prediction.output,
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
