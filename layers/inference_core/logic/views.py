"""The API's response models for a prediction (a job's are in `logic.job_views`): they document in OpenAPI, and are
built from, the one JSON definition in `logic.payloads` that webhooks deliver as their `data`, so the two never drift
apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from inference_core.domain.clock import format_timestamp
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.logic.payloads import prediction_payload, prediction_with_output

# RFC 3339, UTC, milliseconds (2026-11-23T11:23:24.760Z) on every timestamp the API returns.
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-11-23T11:23:24.760Z"}),
]


# Models that only document, or serve routes other than a prediction's, build their validators on first use, not at
# import: the prediction routes are what a cold start most often serves, and they import these modules.
BUILT_ON_FIRST_USE = ConfigDict(defer_build=True)


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


def prediction_view(prediction: Prediction, with_output: bool = True) -> PredictionOut:
    if not with_output:
        return PredictionOut.from_domain(prediction)
    return PredictionOut.model_validate(prediction_with_output(prediction))
