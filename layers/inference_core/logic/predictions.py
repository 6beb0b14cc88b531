"""Submitting, reading, listing, cancelling and waiting for predictions, always within one tenant."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from inference_core.dal.idempotency import IdempotencyClaim, IdempotencyKeyTaken, idempotency_store
from inference_core.dal.objects import object_store
from inference_core.dal.predictions import prediction_store
from inference_core.dal.queue import lane_queue
from inference_core.dal.results import result_store
from inference_core.dal.table import InvalidCursor
from inference_core.domain.batches import WorkItem
from inference_core.domain.clock import utc_now
from inference_core.domain.inputs import estimated_tokens
from inference_core.domain.limits import Lane
from inference_core.domain.predictions import ErrorInfo, NewPrediction, Page, Prediction, PredictionStatus, event_on
from inference_core.domain.result_cache import CACHE_PARAMETER, partial_output
from inference_core.errors import (
    DependencyError,
    IdempotencyConflictError,
    InvalidStateError,
    NotFoundError,
    ValidationFailedError,
)
from inference_core.logic import limits, outbox, usage
from inference_core.logic.result_cache import keys_for, lookup, record_lookup
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

ENQUEUE_FAILED = ErrorInfo.of("enqueue_failed", "the request could not be queued; retry it")


def first_sweep(created_at: datetime) -> datetime:
    """When the sweeper first looks at a prediction that has not finished: the earliest moment it can be stuck
    (its invocation timed out with no notification, had it been dispatched at once)."""
    settings = get_settings()
    return created_at + timedelta(seconds=settings.invocation_timeout_seconds + settings.sweep_margin_seconds)


def body_fingerprint(request: NewPrediction) -> str:
    canonical = json.dumps(asdict(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    tenant_id: str,
    request: NewPrediction,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    waiting: bool = False,
    bypass_cache: bool = False,
    lane: Lane = Lane.INTERACTIVE,
) -> tuple[Prediction, bool]:
    """Record and enqueue a prediction. Returns (prediction, created); created is False for an idempotent replay.

    A caller that waits (`Prefer: wait`) is answered from the result cache at once when every input is cached:
    the dispatcher's lookup would find the same entries, but only after the batching window. Callers that do not
    wait skip this read, so fire-and-forget traffic pays nothing for it.

    `bypass_cache` (the `Cache-Control` header) works like `parameters.cache: false` but is not part of the body,
    so it leaves the idempotency fingerprint alone.

    `lane` is the queue it waits in: the admission decides it from the tenant's share of the minute
    (`RateState.lane`)."""
    store = prediction_store()
    fingerprint = body_fingerprint(request)
    if idempotency_key:
        replay = _replay(tenant_id, idempotency_key, fingerprint)
        if replay:
            return replay, False
    if bypass_cache:
        request = replace(request, parameters={**request.parameters, CACHE_PARAMETER: False})
    prediction = Prediction(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        status=PredictionStatus.QUEUED,
        created_at=now or utc_now(),
        input_count=len(request.inputs),
        tokens=sum(estimated_tokens(text) for text in request.inputs),
        parameters=request.parameters,
        metadata=request.metadata,
        webhook=request.webhook,
        webhook_events=request.webhook_events,
    )
    claim = IdempotencyClaim(tenant_id, idempotency_key, fingerprint) if idempotency_key else None
    if waiting:
        answered = _answer_from_cache(prediction, request)
        if answered is not None:
            created = _create(answered, claim, fingerprint, also=[usage.answered_at_submit(answered)])
            return created, created is answered
    work = WorkItem(
        prediction_id=prediction.id,
        tenant_id=tenant_id,
        created_at=prediction.created_at,
        inputs=request.inputs,
        parameters=request.parameters,
    )
    queue = lane_queue(lane)
    message = queue.encode(work)  # before any write: a request that cannot be queued is refused here
    created = _create(prediction, claim, fingerprint)
    if created is not prediction:
        return created, False
    try:
        queue.send(message)
    except Exception:
        # Never leave a queued record that nothing will dispatch: fail it, and free the key for a retry.
        failed = store.fail(prediction.id, ENQUEUE_FAILED, utc_now(), record=prediction)
        outbox.flush([failed] if failed else [])
        if idempotency_key:
            idempotency_store().release(tenant_id, idempotency_key, prediction.id)
        raise
    logger.info("prediction accepted", prediction_id=prediction.id, inputs=prediction.input_count, lane=lane.value)
    metrics.add_metric(name="PredictionsAccepted", unit=MetricUnit.Count, value=1)
    if lane is Lane.BACKLOG:
        limits.record_backlog(tenant_id, prediction.created_at, prediction.input_count)
        metrics.add_metric(name="BacklogLanePredictions", unit=MetricUnit.Count, value=1)
    return prediction, True


def _create(
    prediction: Prediction, claim: IdempotencyClaim | None, fingerprint: str, also: Sequence[dict[str, Any]] = ()
) -> Prediction:
    """Write the record (with `also`, in one transaction); when another request with the same key won the race
    between our read and our write, that request's prediction instead."""
    try:
        prediction_store().create(prediction, first_sweep(prediction.created_at), claim, also)
    except IdempotencyKeyTaken:
        replay = _replay(prediction.tenant_id, claim.key if claim else "", fingerprint)
        if replay:
            return replay
        raise
    if prediction.status.is_terminal and prediction.webhook:
        event = event_on(prediction, prediction.status)
        outbox.flush([replace(prediction, outbox=(event,) if event else ())])
    return prediction


def _answer_from_cache(prediction: Prediction, request: NewPrediction) -> Prediction | None:
    """The prediction finished from the result cache, when every input is there (its output written to S3 as
    completion would), else None."""
    keys = keys_for(prediction.tenant_id, request.parameters, request.inputs)
    if not keys:
        return None
    found = lookup(keys, prediction.created_at)
    entries = [found.get(k) for k in keys]
    if not all(entries):
        return None  # counted when the dispatcher looks again, so no input is counted twice
    try:
        location, size = result_store().put_line(prediction.id, partial_output(entries))
    except DependencyError:
        return None  # the queue path still answers it
    record_lookup(len(entries), len(entries))
    metrics.add_metric(name="PredictionsAnsweredAtSubmit", unit=MetricUnit.Count, value=1)
    finished = utc_now()
    return replace(
        prediction,
        status=PredictionStatus.SUCCEEDED,
        started_at=finished,
        completed_at=finished,
        output_location=location,
        output_range=(0, size - 1),
    )


def _replay(tenant_id: str, key: str, fingerprint: str) -> Prediction | None:
    claimed = idempotency_store().find(tenant_id, key)
    if claimed is None:
        return None
    if claimed.body_hash != fingerprint:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used with a different body", {"prediction_id": claimed.prediction_id}
        )
    return prediction_store().get(claimed.prediction_id, consistent=True)


def get(tenant_id: str, prediction_id: str, consistent: bool = False) -> Prediction:
    """A prediction of this tenant; another tenant's id answers exactly like an unknown one."""
    prediction = prediction_store().get(prediction_id, consistent=consistent)
    if prediction is None or prediction.tenant_id != tenant_id:
        raise NotFoundError("prediction not found", {"id": prediction_id})
    return prediction


def output_for(prediction: Prediction) -> dict[str, Any] | None:
    """The output as the client asked for it (`encoding_format`), read with one ranged GET of the batch output."""
    output = prediction.output
    if output is None and prediction.output_location and prediction.output_range:
        start, end = prediction.output_range
        output = result_store().read_line(prediction.output_location, start, end).output
    if output is None:
        return None
    return encode_output(output, str(prediction.parameters.get("encoding_format", "float")))


def encode_output(output: dict[str, Any], encoding_format: str) -> dict[str, Any]:
    """`base64`: each embedding as base64 of little-endian float32, about a third of the JSON numbers' size."""
    embeddings = output.get("embeddings")
    if encoding_format != "base64" or not isinstance(embeddings, list):
        return output
    encoded = [
        base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        if isinstance(vector, list)
        else vector
        for vector in embeddings
    ]
    return {**output, "embeddings": encoded}


def output_url(prediction: Prediction) -> str | None:
    """A short-lived link to an output kept as an object of its own because it was too large to inline."""
    if not prediction.output_location or prediction.output_range is not None:
        return None
    return object_store().presigned_get(prediction.output_location, get_settings().presigned_url_seconds)


def list_for_tenant(tenant_id: str, limit: int, status: PredictionStatus | None, cursor: str | None) -> Page:
    try:
        items, next_cursor = prediction_store().list_for_tenant(tenant_id, limit, status, cursor)
    except InvalidCursor as exc:
        raise ValidationFailedError("invalid cursor", {"field": "cursor"}) from exc
    return Page(items=items, next_cursor=next_cursor)


def cancel(tenant_id: str, prediction_id: str, now: datetime | None = None) -> Prediction:
    current = get(tenant_id, prediction_id, consistent=True)
    if current.status == PredictionStatus.CANCELLED:
        return current  # cancelling twice is not an error
    transition = prediction_store().cancel(prediction_id, now or utc_now(), record=current)
    updated, refused = transition.updated, transition.current
    if updated:
        outbox.flush([updated])
        logger.info("prediction cancelled", prediction_id=prediction_id, was=current.status.value)
        return updated
    status = refused.status if refused else current.status
    if status == PredictionStatus.CANCELLED:
        return refused or current
    raise InvalidStateError(
        f"a {status.value} prediction cannot be cancelled", {"id": prediction_id, "status": status.value}
    )


WAIT_POLL_MAX_SECONDS = 0.25


async def wait_until_finished(
    tenant_id: str,
    prediction_id: str,
    timeout_seconds: float,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Prediction:
    """Poll the record (100 ms, then every 250 ms) until it is terminal or the timeout passes. A finished prediction
    is seen within a quarter second; each poll is one small read, a few per waiting request."""
    import asyncio  # here: the consumers import this module and never wait (asyncio is ~6 ms of their cold start)

    sleep = sleep or asyncio.sleep
    deadline = clock() + timeout_seconds
    delay = 0.1
    while True:
        prediction = await asyncio.to_thread(get, tenant_id, prediction_id, True)
        remaining = deadline - clock()
        if prediction.status.is_terminal or remaining <= 0:
            return prediction
        await sleep(min(delay, remaining))
        delay = min(delay * 2, WAIT_POLL_MAX_SECONDS)
