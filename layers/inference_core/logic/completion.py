"""Completion: turn one SageMaker async notification into finished status records, one per prediction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from inference_core.dal.objects import object_store
from inference_core.dal.predictions import prediction_store
from inference_core.errors import TransientError
from inference_core.logic.models import (
    AsyncInferenceNotification,
    InvocationStatus,
    Prediction,
    PredictionStatus,
    ResultLine,
    error_fields,
    utc_now,
)
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

# A batch output holds at most a few hundred predictions of up to 256 embeddings each.
MAX_OUTPUT_BYTES = 512 * 1024 * 1024
# Re-reads (0.1 s doubling: about 3 s in all) of predictions the dispatcher has not marked running yet.
_READ_ATTEMPTS = 6


class MalformedNotification(ValueError):
    """The message is not a SageMaker async-inference notification we can act on."""


@dataclass
class CompletionOutcome:
    batch_id: str
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def parse_notification(body: str) -> AsyncInferenceNotification:
    """Accepts the raw notification (raw message delivery) or one wrapped in an SNS envelope."""
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
            document = json.loads(document["Message"])
        return AsyncInferenceNotification.model_validate(document)
    except (ValueError, ValidationError, TypeError) as exc:
        raise MalformedNotification("not a SageMaker async inference notification") from exc


def parse_results(body: bytes) -> dict[str, ResultLine]:
    """Index the model's output lines by prediction id; a line that is not valid JSON is skipped alone."""
    results: dict[str, ResultLine] = {}
    for number, raw in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = ResultLine.model_validate_json(raw)
        except ValidationError:
            logger.warning("malformed output line", line=number)
            continue
        if line.id is not None and (line.output is not None or line.error is not None):
            results.setdefault(line.id, line)
    return results


class BatchNotReady(TransientError):
    """Some predictions of the batch are not marked running yet; the notification is retried later."""


def complete(
    notification: AsyncInferenceNotification,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CompletionOutcome:
    store = prediction_store()
    batch_id = notification.inference_id
    outcome = CompletionOutcome(batch_id=batch_id)
    batch = store.get_batch(batch_id)
    if batch is None:
        logger.warning("notification for an unknown batch", batch_id=batch_id)
        metrics.add_metric(name="UnknownBatchNotifications", unit=MetricUnit.Count, value=1)
        return outcome

    completed = notification.invocation_status == InvocationStatus.COMPLETED
    if completed and not notification.response_parameters.output_location:
        raise MalformedNotification("a Completed notification without responseParameters.outputLocation")
    now = now or utc_now()
    results: dict[str, ResultLine] | None = None
    waiting = list(batch.prediction_ids)
    delay = 0.1
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            sleep(delay)
            delay *= 2
        # One read per batch: late and duplicate notifications stop here without touching S3.
        current = store.get_many(waiting)
        ready = [p for p in current.values() if p.status == PredictionStatus.RUNNING and p.batch_id == batch_id]
        # The dispatcher marks predictions running just after invoking; a fast endpoint can beat it.
        waiting = [pid for pid in waiting if pid in current and current[pid].status == PredictionStatus.QUEUED]
        outcome.ignored += [pid for pid in current if pid not in waiting and pid not in {p.id for p in ready}]
        if ready and results is None and completed:
            location = notification.response_parameters.output_location or ""
            results = parse_results(object_store().read(location, MAX_OUTPUT_BYTES))
        for prediction in ready:
            _settle(prediction, notification, results or {}, now, outcome)
        if not waiting:
            return outcome
    raise BatchNotReady("predictions of this batch are still queued", {"prediction_ids": waiting})


def _settle(
    prediction: Prediction,
    notification: AsyncInferenceNotification,
    results: dict[str, ResultLine],
    now: datetime,
    outcome: CompletionOutcome,
) -> None:
    if notification.invocation_status == InvocationStatus.FAILED:
        reason = notification.failure_reason or "the model endpoint failed the batch"
        _finish(prediction, PredictionStatus.FAILED, now, error_fields("inference_failed", reason), outcome)
        return
    result = results.get(prediction.id)
    if result is None:
        fields = error_fields("missing_output", "the model returned no result for this prediction")
        _finish(prediction, PredictionStatus.FAILED, now, fields, outcome)
    elif result.error is not None:
        _finish(
            prediction, PredictionStatus.FAILED, now, error_fields(result.error.code, result.error.message), outcome
        )
    else:
        _finish(prediction, PredictionStatus.SUCCEEDED, now, _output_fields(prediction, result.output or {}), outcome)


def _output_fields(prediction: Prediction, output: dict[str, Any]) -> dict[str, Any]:
    """Small outputs live in the status record; large ones in S3, referenced by location."""
    settings = get_settings()
    encoded = json.dumps(output, separators=(",", ":"))
    if len(encoded.encode()) <= settings.inline_output_max_bytes:
        return {"output": encoded}
    key = f"{settings.result_prefix}{prediction.id}.json"
    return {"output_location": object_store().put(key, encoded.encode(), "application/json")}


def _finish(
    prediction: Prediction,
    status: PredictionStatus,
    now: datetime,
    fields: dict[str, Any],
    outcome: CompletionOutcome,
) -> None:
    inference_ms = int((now - prediction.started_at).total_seconds() * 1000) if prediction.started_at else None
    moved, _ = prediction_store().transition(
        prediction.id,
        status,
        {PredictionStatus.RUNNING},
        {"completed_at": now, "inference_ms": inference_ms} | fields,
        require_batch_id=outcome.batch_id,
    )
    if moved is None:
        outcome.ignored.append(prediction.id)  # cancelled in the meantime: its result is discarded
        return
    if status == PredictionStatus.SUCCEEDED:
        outcome.succeeded.append(prediction.id)
        metrics.add_metric(name="PredictionsSucceeded", unit=MetricUnit.Count, value=1)
    else:
        outcome.failed.append(prediction.id)
        metrics.add_metric(name="PredictionsFailed", unit=MetricUnit.Count, value=1)
    if inference_ms is not None:
        metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=inference_ms)
    logger.info("prediction finished", prediction_id=prediction.id, status=status.value, batch_id=outcome.batch_id)
