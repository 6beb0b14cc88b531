"""A prediction or a job as JSON, the one definition of what GET returns and what a webhook delivers as `data`.

Plain dicts, so the webhook sender stays off pydantic's cold start; the API's response models (`logic.views`) are
built from these and document the same shape in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from inference_core.dal.objects import object_store
from inference_core.domain.clock import format_timestamp
from inference_core.domain.jobs import Job, JobSource
from inference_core.domain.predictions import ErrorInfo, Prediction
from inference_core.logic.predictions import output_for, output_url

if TYPE_CHECKING:
    from inference_core.logic import jobs as job_logic


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def _error(error: ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else error.as_dict()


def prediction_payload(
    prediction: Prediction, output: dict[str, Any] | None = None, link: str | None = None
) -> dict[str, Any]:
    metrics = prediction.metrics
    return {
        "id": prediction.id,
        "status": prediction.status.value,
        "created_at": format_timestamp(prediction.created_at),
        "started_at": _timestamp(prediction.started_at),
        "completed_at": _timestamp(prediction.completed_at),
        "input_count": prediction.input_count,
        "metadata": prediction.metadata,
        "output": output,
        "output_url": link,
        "error": _error(prediction.error),
        "metrics": {"queue_ms": metrics.queue_ms, "inference_ms": metrics.inference_ms},
    }


def prediction_with_output(prediction: Prediction) -> dict[str, Any]:
    """With its output inlined, or a link to it when it is too large to inline."""
    return prediction_payload(prediction, output_for(prediction), output_url(prediction))


def job_payload(job: Job, upload: job_logic.UploadLink | None = None) -> dict[str, Any]:
    from inference_core.logic import jobs as job_logic  # here: a prediction's API or webhook needs no job logic

    progress = job_logic.progress(job)
    output_link, error_link = job_logic.result_urls(job)
    estimate = job.estimate
    return {
        "id": job.id,
        "status": job.status.value,
        "created_at": format_timestamp(job.created_at),
        "started_at": _timestamp(job.started_at),
        "completed_at": _timestamp(job.completed_at),
        "request_counts": {"total": job.total, "completed": job.completed, "failed": job.failed},
        "progress": {
            "fraction": float(progress.fraction),
            "items_per_second": _number(progress.items_per_second),
            "eta_seconds": _number(progress.eta_seconds),
        },
        "output_url": output_link,
        "error_url": error_link,
        "errors": [{"custom_id": e.custom_id, "line": e.line, "error": e.error.as_dict()} for e in job.errors],
        "error": _error(job.error),
        "metadata": job.metadata,
        "source": job.source.value,
        "input_location": object_store().uri(job.input_key) if job.source is JobSource.INBOX else None,
        "parent_id": job.parent_id,
        "dry_run": job.dry_run,
        "estimate": None
        if estimate is None
        else {
            "inputs": estimate.inputs,
            "tokens": estimate.tokens,
            "endpoint_seconds": float(estimate.endpoint_seconds),
            "cost_usd": float(estimate.cost_usd),
            "eta_seconds": float(estimate.eta_seconds),
        },
        "upload": None
        if upload is None
        else {
            "url": upload.url,
            "method": "PUT",
            "headers": upload.headers,
            "expires_at": format_timestamp(upload.expires_at),
        },
    }
