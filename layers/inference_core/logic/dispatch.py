"""Dispatch: pack one SQS batch of predictions into one S3 object and one asynchronous endpoint invocation."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from inference_core.dal.endpoint import async_endpoint
from inference_core.dal.objects import object_store
from inference_core.dal.predictions import prediction_store
from inference_core.errors import PermanentDependencyError, TransientError
from inference_core.logic.models import (
    BatchLine,
    BatchRecord,
    PredictionStatus,
    WorkItem,
    error_fields,
    utc_now,
)
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

_MARKING_THREADS = 16


@dataclass(frozen=True)
class QueuedMessage:
    """The parts of an SQS record that dispatching needs."""

    message_id: str
    body: str
    receive_count: int


@dataclass
class DispatchOutcome:
    failed_message_ids: list[str] = field(default_factory=list)
    batch_id: str | None = None
    dispatched: list[str] = field(default_factory=list)
    skipped: int = 0


def encode_batch(lines: list[BatchLine]) -> bytes:
    return "".join(line.model_dump_json() + "\n" for line in lines).encode()


def dispatch(messages: list[QueuedMessage], now: datetime | None = None) -> DispatchOutcome:
    settings = get_settings()
    store = prediction_store()
    now = now or utc_now()
    outcome = DispatchOutcome()

    work: list[tuple[QueuedMessage, WorkItem]] = []
    for message in messages:
        try:
            work.append((message, WorkItem.model_validate_json(message.body)))
        except ValidationError as exc:
            # Poison message: fail it alone; after maxReceiveCount SQS moves it to the DLQ for inspection.
            logger.error("malformed work item", message_id=message.message_id, errors=exc.error_count())
            metrics.add_metric(name="MalformedWorkItems", unit=MetricUnit.Count, value=1)
            outcome.failed_message_ids.append(message.message_id)
    if not work:
        return outcome

    try:
        records = store.get_many(item.prediction_id for _, item in work)
    except TransientError:
        outcome.failed_message_ids.extend(m.message_id for m, _ in work)
        return outcome

    to_send: list[tuple[QueuedMessage, WorkItem]] = []
    seen: set[str] = set()
    ttl = timedelta(seconds=settings.prediction_ttl_seconds)
    for message, item in work:
        record = records.get(item.prediction_id)
        if record is None or record.tenant_id != item.tenant_id:
            logger.warning("work item without a status record", prediction_id=item.prediction_id)
            outcome.skipped += 1
        elif record.status != PredictionStatus.QUEUED or item.prediction_id in seen:
            # Cancelled, already dispatched (duplicate delivery) or finished: nothing to do.
            outcome.skipped += 1
        elif now - record.created_at > ttl:
            store.transition(
                record.id,
                PredictionStatus.EXPIRED,
                {PredictionStatus.QUEUED},
                {"completed_at": now} | error_fields("expired", "the prediction waited longer than its time to live"),
            )
            metrics.add_metric(name="PredictionsExpired", unit=MetricUnit.Count, value=1)
            outcome.skipped += 1
        else:
            seen.add(item.prediction_id)
            to_send.append((message, item))
    if not to_send:
        return outcome

    batch_id = str(uuid.uuid4())
    lines = [BatchLine(id=i.prediction_id, inputs=i.inputs, parameters=i.parameters) for _, i in to_send]
    try:
        location = object_store().put(
            f"{settings.batch_input_prefix}{batch_id}.jsonl", encode_batch(lines), "application/jsonlines"
        )
        store.put_batch(
            BatchRecord(
                batch_id=batch_id, prediction_ids=[line.id for line in lines], input_location=location, created_at=now
            )
        )
        async_endpoint().invoke(location, batch_id)
    except (TransientError, PermanentDependencyError) as exc:
        _fail_attempt(to_send, exc, settings.max_receive_count, now)
        outcome.failed_message_ids.extend(m.message_id for m, _ in to_send)
        return outcome

    started = utc_now()

    def mark_running(item: WorkItem) -> tuple[bool, int] | None:
        queue_ms = max(0, int((started - item.created_at).total_seconds() * 1000))
        try:
            moved, _ = store.transition(
                item.prediction_id,
                PredictionStatus.RUNNING,
                {PredictionStatus.QUEUED},
                {"started_at": started, "batch_id": batch_id, "queue_ms": queue_ms},
            )
        except TransientError:
            return None
        return moved is not None, queue_ms

    # In parallel: the endpoint may finish before a sequential loop would, and completion waits on these.
    with ThreadPoolExecutor(max_workers=min(_MARKING_THREADS, len(to_send))) as pool:
        marks = list(pool.map(mark_running, [item for _, item in to_send]))
    for (message, item), mark in zip(to_send, marks, strict=True):
        if mark is None:
            # SQS will redeliver; the prediction is still queued and goes out again in a later batch.
            outcome.failed_message_ids.append(message.message_id)
        elif mark[0]:
            outcome.dispatched.append(item.prediction_id)
            metrics.add_metric(name="QueueTime", unit=MetricUnit.Milliseconds, value=mark[1])
        else:
            # Cancelled between our read and now: the model still runs it, completion discards the result.
            outcome.skipped += 1
    outcome.batch_id = batch_id
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(lines))
    metrics.add_metric(name="EndpointInvocations", unit=MetricUnit.Count, value=1)
    logger.info("batch dispatched", batch_id=batch_id, size=len(lines), skipped=outcome.skipped)
    return outcome


def _fail_attempt(
    to_send: list[tuple[QueuedMessage, WorkItem]], exc: Exception, max_receive_count: int, now: datetime
) -> None:
    """On the last delivery SQS will make, mark the prediction failed so the user sees why it went to the DLQ."""
    reason = getattr(exc, "details", {}).get("reason") or str(exc)
    logger.warning("batch not dispatched", reason=str(exc), size=len(to_send))
    metrics.add_metric(name="DispatchFailures", unit=MetricUnit.Count, value=len(to_send))
    for message, item in to_send:
        if message.receive_count < max_receive_count:
            continue
        try:
            prediction_store().transition(
                item.prediction_id,
                PredictionStatus.FAILED,
                {PredictionStatus.QUEUED},
                {"completed_at": now}
                | error_fields(
                    "dispatch_failed",
                    f"the model endpoint could not take the request after {message.receive_count} attempts: {reason}",
                ),
            )
        except TransientError:
            logger.exception("could not mark prediction failed", prediction_id=item.prediction_id)
