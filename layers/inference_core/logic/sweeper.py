"""The sweeper: finishes work that nothing else will. Runs on a schedule, bounded work per run, idempotent.

- A `running` prediction past its invocation timeout plus a margin lost its notification (dead-lettered, or the
  dispatcher died before invoking): if the batch output exists it is completed from it, exactly as completion
  would; if a failure object exists the batch fails with its reason; otherwise it fails with `lost_notification`.
- A `queued` prediction past its time to live that nothing dispatched ends `expired`.
- Webhook events still kept on a record (their queueing failed, or the function died after the write) are queued.
- A batch the result cache answered whole whose dispatcher died is finished from its hits object, and counted in
  usage from the dispatcher's promise.
Everything else that is found early is given a later sweep time; anything finished is dropped from the index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from inference_core.dal.objects import batch_failure_prefix, batch_output_key, object_store
from inference_core.dal.predictions import prediction_store
from inference_core.dal.queue import request_dead_letters
from inference_core.domain.batches import AsyncInferenceNotification, InvocationStatus, WorkItem
from inference_core.domain.clock import utc_now
from inference_core.domain.documents import InvalidDocument
from inference_core.domain.predictions import EXPIRED, ErrorInfo, Prediction, PredictionStatus
from inference_core.domain.result_cache import is_complete
from inference_core.logic import outbox, usage
from inference_core.logic.completion import complete, unrecorded_hits
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

# Per index partition per run: a run reads at most a few hundred records, however much is stuck.
SWEEP_LIMIT = 100
MAX_FAILURE_BYTES = 64 * 1024
DLQ_ROUNDS = 10
# Peeked without hiding, so the DLQ alarm, operators and redrives always see every message.
DLQ_HIDE_SECONDS = 0
LOST = ErrorInfo.of(
    "lost_notification",
    "the model endpoint's completion notice never arrived and no output was found for this prediction",
)


@dataclass
class SweepPlan:
    expire: list[Prediction] = field(default_factory=list)
    stuck_batches: dict[str, list[Prediction]] = field(default_factory=dict)
    later: dict[str, datetime] = field(default_factory=dict)  # prediction id -> next sweep time
    close: list[str] = field(default_factory=list)
    # Records with webhook events not queued yet (a finished one leaves the index once they are).
    flush: list[Prediction] = field(default_factory=list)


@dataclass
class SweepOutcome:
    expired: int = 0
    completed_from_output: int = 0
    failed_from_failure: int = 0
    lost: int = 0
    rescheduled: int = 0
    closed: int = 0
    dead_lettered: int = 0
    events_queued: int = 0
    usage_counted: int = 0


def plan_sweep(records: list[Prediction], now: datetime, ttl: timedelta, running_grace: timedelta) -> SweepPlan:
    """What to do with each prediction the index says may be stuck (pure)."""
    plan = SweepPlan()
    stuck: dict[str, list[Prediction]] = defaultdict(list)
    for record in records:
        if record.outbox:
            plan.flush.append(record)
        if record.status.is_terminal:
            if not record.outbox:
                plan.close.append(record.id)
        elif record.status == PredictionStatus.QUEUED:
            deadline = record.created_at + ttl
            if now >= deadline:
                plan.expire.append(record)
            else:
                plan.later[record.id] = deadline
        else:  # running
            deadline = (record.started_at or record.created_at) + running_grace
            if now < deadline:
                plan.later[record.id] = deadline
            elif record.batch_id is not None:  # the store never marks running without a batch
                stuck[record.batch_id].append(record)
    plan.stuck_batches = dict(stuck)
    return plan


def sweep(now: datetime | None = None) -> SweepOutcome:
    now = now or utc_now()
    settings = get_settings()
    store = prediction_store()
    ids = store.due_for_sweep(now, SWEEP_LIMIT)
    records = list(store.get_many(ids).values()) if ids else []
    plan = plan_sweep(
        records,
        now,
        ttl=timedelta(seconds=settings.prediction_ttl_seconds),
        running_grace=timedelta(seconds=settings.invocation_timeout_seconds + settings.sweep_margin_seconds),
    )
    # The longest a batch may still be inside SageMaker: its queue (RequestTTLSeconds) plus the invocation.
    lost_after = timedelta(seconds=settings.request_ttl_seconds) + timedelta(
        seconds=settings.invocation_timeout_seconds + settings.sweep_margin_seconds
    )
    outcome = SweepOutcome()
    # Each action stands alone: one failure (throttling, an unreadable object) must not stop the rest of the run,
    # or the same item would stop every run after it.
    outcome.events_queued = _isolated("queue events", "outbox", partial(outbox.flush, plan.flush))
    for record in plan.expire:
        outcome.expired += _isolated("expire", record.id, partial(_expire, record, now))
    for prediction_id, at in plan.later.items():
        outcome.rescheduled += _isolated("reschedule", prediction_id, partial(store.sweep_later, prediction_id, at))
    for prediction_id in plan.close:
        outcome.closed += _isolated("close", prediction_id, partial(store.close, prediction_id))
    for batch_id, stuck in plan.stuck_batches.items():
        _isolated("finish batch", batch_id, partial(_finish_batch, batch_id, stuck, now, lost_after, outcome))
    outcome.dead_lettered = _isolated("dead letters", "request DLQ", partial(_fail_dead_lettered, now))
    outcome.usage_counted = _isolated("count promised usage", "usage", partial(usage.count_promised, now))
    for name, value in (
        ("SweptExpired", outcome.expired),
        ("SweptCompletedFromOutput", outcome.completed_from_output),
        ("SweptFailedFromFailure", outcome.failed_from_failure),
        ("SweptLostNotifications", outcome.lost),
        ("SweptDeadLettered", outcome.dead_lettered),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("sweep done", found=len(ids), **outcome.__dict__)
    return outcome


def _expire(record: Prediction, now: datetime) -> bool:
    expired = prediction_store().expire(record.id, EXPIRED, now, record=record)
    outbox.flush([expired] if expired else [])
    return expired is not None


def _isolated(action: str, subject: str, work: Callable[[], object]) -> int:
    """Runs one sweep action on its own: its count (1 for done, or the number it reports), 0 when it failed."""
    try:
        result = work()
    except Exception:  # logged and counted; the item is due again next run
        logger.exception("sweep action failed", action=action, subject=subject)
        metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
        return 0
    return result if isinstance(result, int) and not isinstance(result, bool) else int(result is not False)


def _finish_batch(
    batch_id: str, stuck: list[Prediction], now: datetime, lost_after: timedelta, outcome: SweepOutcome
) -> None:
    """Complete a batch from what the endpoint left in S3, through the same code as a notification would. With
    nothing there yet, the batch may still wait in SageMaker's own queue: it is lost only after `lost_after`."""
    objects = object_store()
    output = objects.find(batch_output_key(batch_id)) or _answered_whole(batch_id, stuck)
    failure = None if output else objects.find(batch_failure_prefix(batch_id))
    if output is not None or failure is not None:
        notification = AsyncInferenceNotification.from_document(
            {
                "invocationStatus": InvocationStatus.COMPLETED if output else InvocationStatus.FAILED,
                "inferenceId": batch_id,
                "failureReason": None if output else _failure_reason(failure or ""),
                "responseParameters": {"outputLocation": output, "failureLocation": failure},
            }
        )
        result = complete(notification, now, prediction_ids=[p.id for p in stuck])
        if output:
            outcome.completed_from_output += len(result.succeeded) + len(result.failed)
        else:
            outcome.failed_from_failure += len(result.failed)
        logger.warning("batch finished by the sweeper", batch_id=batch_id, from_output=output is not None)
        return
    still_possible = [p for p in stuck if now < (p.started_at or p.created_at) + lost_after]
    store = prediction_store()
    for prediction in still_possible:
        store.sweep_later(prediction.id, (prediction.started_at or prediction.created_at) + lost_after)
        outcome.rescheduled += 1
    if len(still_possible) < len(stuck):
        outcome.lost += _fail_lost([p for p in stuck if p not in still_possible], batch_id, now)


def _answered_whole(batch_id: str, stuck: list[Prediction]) -> str | None:
    """The hits object, when it answers every stuck prediction whole: the dispatcher died before finishing them
    from it (the model was never asked for them, so no output will come)."""
    found = unrecorded_hits(batch_id)
    if found is None:
        return None
    location, hits = found
    whole = {pid for pid, hit in hits.items() if hit.output is not None and is_complete(hit.output)}
    return location if {p.id for p in stuck} <= whole else None


def _fail_dead_lettered(now: datetime) -> int:
    """A work item in the request DLQ whose prediction is still `queued` will never run: fail it with the reason
    now, rather than at its time to live. (The dispatcher does this on the last delivery SQS makes; this catches
    the deliveries a concurrent duplicate used up.) The messages stay in the DLQ."""
    bodies = request_dead_letters().peek(rounds=DLQ_ROUNDS, hide_seconds=DLQ_HIDE_SECONDS)
    ids = [work.prediction_id for work in (_work_item(body) for body in bodies) if work is not None]
    if not ids:
        return 0
    store = prediction_store()
    queued = [p for p in store.get_many(ids).values() if p.status == PredictionStatus.QUEUED]
    error = ErrorInfo.of(
        "dispatch_failed",
        f"the model endpoint could not take the request after {get_settings().max_receive_count} attempts; "
        "it is in the request dead-letter queue",
    )
    failed = [moved for p in queued if (moved := store.fail(p.id, error, now, record=p))]
    outbox.flush(failed)
    return len(failed)


def _work_item(body: str) -> WorkItem | None:
    try:
        return WorkItem.from_json(body)
    except InvalidDocument:
        return None


def _fail_lost(records: list[Prediction], batch_id: str, now: datetime) -> int:
    store = prediction_store()
    failed = [m for r in records if (m := store.fail(r.id, LOST, now, batch_id=batch_id, record=r))]
    outbox.flush(failed)
    if failed:
        logger.warning("predictions failed: notification lost", batch_id=batch_id, count=len(failed))
    return len(failed)


def _failure_reason(location: str) -> str:
    """The endpoint's failure object holds its error text; fall back to a generic reason if it is unreadable."""
    try:
        text = object_store().read(location, MAX_FAILURE_BYTES).decode("utf-8", errors="replace").strip()
    except Exception:  # an unreadable failure object must not stop the batch from failing
        text = ""
    return f"the model endpoint failed the batch: {text[:500]}" if text else "the model endpoint failed the batch"
