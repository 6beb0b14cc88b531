"""Submitting, reading, listing, cancelling and waiting for predictions, always within one tenant."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from inference_core.dal.objects import object_store
from inference_core.dal.predictions import IdempotencyKeyTaken, prediction_store
from inference_core.dal.queue import request_queue
from inference_core.errors import IdempotencyConflictError, InvalidStateError, NotFoundError, TransientError
from inference_core.logic.models import (
    ALLOWED_SOURCES,
    NewPrediction,
    Page,
    Prediction,
    PredictionStatus,
    WorkItem,
    error_fields,
    utc_now,
)
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings


def body_fingerprint(request: NewPrediction) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    tenant_id: str, request: NewPrediction, idempotency_key: str | None = None, now: datetime | None = None
) -> tuple[Prediction, bool]:
    """Record and enqueue a prediction. Returns (prediction, created); created is False for an idempotent replay."""
    store = prediction_store()
    fingerprint = body_fingerprint(request)
    if idempotency_key:
        replay = _replay(tenant_id, idempotency_key, fingerprint)
        if replay:
            return replay, False
    prediction = Prediction(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        status=PredictionStatus.QUEUED,
        created_at=now or utc_now(),
        input_count=len(request.inputs),
        parameters=request.parameters,
        metadata=request.metadata,
        webhook=request.webhook,
    )
    try:
        store.create(prediction, (idempotency_key, fingerprint) if idempotency_key else None)
    except IdempotencyKeyTaken:
        # Another request with the same key won the race between our read and our write.
        replay = _replay(tenant_id, idempotency_key or "", fingerprint)
        if replay:
            return replay, False
        raise
    work = WorkItem(
        prediction_id=prediction.id,
        tenant_id=tenant_id,
        created_at=prediction.created_at,
        inputs=request.inputs,
        parameters=request.parameters,
    )
    try:
        request_queue().send(work.model_dump_json())
    except TransientError:
        # Never leave a queued record that nothing will dispatch: fail it, and free the key for a retry.
        store.transition(
            prediction.id,
            PredictionStatus.FAILED,
            ALLOWED_SOURCES[PredictionStatus.FAILED],
            error_fields("enqueue_failed", "the request could not be queued; retry it"),
        )
        if idempotency_key:
            store.release_idempotency(tenant_id, idempotency_key, prediction.id)
        raise
    logger.info("prediction accepted", prediction_id=prediction.id, inputs=prediction.input_count)
    metrics.add_metric(name="PredictionsAccepted", unit=MetricUnit.Count, value=1)
    return prediction, True


def _replay(tenant_id: str, key: str, fingerprint: str) -> Prediction | None:
    store = prediction_store()
    existing = store.idempotency_record(tenant_id, key)
    if existing is None:
        return None
    prediction_id, stored_fingerprint = existing
    if stored_fingerprint != fingerprint:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used with a different body", {"prediction_id": prediction_id}
        )
    return store.get(prediction_id, consistent=True)


def get(tenant_id: str, prediction_id: str, consistent: bool = False) -> Prediction:
    """A prediction of this tenant; another tenant's id answers exactly like an unknown one."""
    prediction = prediction_store().get(prediction_id, consistent=consistent)
    if prediction is None or prediction.tenant_id != tenant_id:
        raise NotFoundError("prediction not found", {"id": prediction_id})
    return prediction


def output_url(prediction: Prediction) -> str | None:
    """A short-lived link to an output kept in S3 because it was too large for the status record."""
    if not prediction.output_location:
        return None
    return object_store().presigned_get(prediction.output_location, get_settings().presigned_url_seconds)


def list_for_tenant(tenant_id: str, limit: int, status: PredictionStatus | None, cursor: str | None) -> Page:
    items, next_cursor = prediction_store().list_for_tenant(tenant_id, limit, status, cursor)
    return Page(items=items, next_cursor=next_cursor)


def cancel(tenant_id: str, prediction_id: str, now: datetime | None = None) -> Prediction:
    current = get(tenant_id, prediction_id, consistent=True)
    if current.status == PredictionStatus.CANCELLED:
        return current  # cancelling twice is not an error
    updated, refused = prediction_store().transition(
        prediction_id,
        PredictionStatus.CANCELLED,
        ALLOWED_SOURCES[PredictionStatus.CANCELLED],
        {"completed_at": now or utc_now()},
    )
    if updated:
        logger.info("prediction cancelled", prediction_id=prediction_id, was=current.status.value)
        return updated
    status = refused.status if refused else current.status
    if status == PredictionStatus.CANCELLED:
        return refused or current
    raise InvalidStateError(
        f"a {status.value} prediction cannot be cancelled", {"id": prediction_id, "status": status.value}
    )


async def wait_until_finished(
    tenant_id: str,
    prediction_id: str,
    timeout_seconds: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Prediction:
    """Poll the record (backing off from 100 ms to 1 s) until it is terminal or the timeout passes."""
    deadline = clock() + timeout_seconds
    delay = 0.1
    while True:
        prediction = await asyncio.to_thread(get, tenant_id, prediction_id, True)
        remaining = deadline - clock()
        if prediction.status.is_terminal or remaining <= 0:
            return prediction
        await sleep(min(delay, remaining))
        delay = min(delay * 2, 1.0)
