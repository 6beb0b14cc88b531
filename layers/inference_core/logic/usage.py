"""Usage per tenant and day: counted once per batch of predictions (completion, or the dispatcher for a batch the
result cache answered whole, promised first so the sweeper counts it should the dispatcher die) and once per bulk
chunk (in the transaction that finishes it), read back per day and priced with the template's endpoint price."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from inference_core.dal.predictions import prediction_store
from inference_core.dal.usage import usage_store
from inference_core.domain.batches import BatchRecord
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.domain.usage import UsageCounts, endpoint_us, usage_day
from inference_core.errors import DependencyError, ValidationFailedError
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

MAX_DAYS = 366
# The dispatcher finishes a batch the cache answered whole within seconds: the sweeper counts it after this.
PROMISE_GRACE = timedelta(minutes=5)
PROMISES_PER_SWEEP = 50


@dataclass(frozen=True)
class DayUsage:
    day: date
    counts: UsageCounts
    endpoint_seconds: float
    cost_usd: float


def batch_usage(
    batch_id: str,
    records: Iterable[Prediction],
    batch: BatchRecord | None,
    now: datetime,
    cached_texts: Mapping[str, int] | None = None,
) -> dict[tuple[str, date], UsageCounts]:
    """What the predictions this batch finished used: those that succeeded in it (the records say so however
    often, and by whom, they were finished). Cache hits come from the batch record, or for a batch without one
    from `cached_texts` (prediction id -> its texts the cache answered)."""
    items_per_second = get_settings().endpoint_items_per_second
    usage: dict[tuple[str, date], UsageCounts] = defaultdict(UsageCounts)
    for record in records:
        if record.status is not PredictionStatus.SUCCEEDED or record.batch_id != batch_id:
            continue
        cached = 0
        if cached_texts is not None:
            cached = min(record.input_count, cached_texts.get(record.id, 0))
        elif batch is not None and record.id in batch.answered_ids:
            cached = record.input_count
        elif batch is not None and record.id in batch.fill_keys:
            cached = max(0, record.input_count - len(batch.fill_keys[record.id]))
        counts = UsageCounts(
            predictions=1,
            inputs=record.input_count,
            tokens=record.tokens,
            cache_hits=cached,
            endpoint_us=endpoint_us(record.input_count - cached, items_per_second),
        )
        usage[(record.tenant_id, usage_day(record.completed_at or now))].add(counts)
    return dict(usage)


def _unit(batch_id: str) -> str:
    return f"batch#{batch_id}"


def record_batch(
    batch_id: str,
    records: Iterable[Prediction],
    batch: BatchRecord | None,
    now: datetime,
    cached_texts: Mapping[str, int] | None = None,
) -> None:
    usage = batch_usage(batch_id, records, batch, now, cached_texts)
    if usage:
        usage_store().record_once(_unit(batch_id), usage, now)


def answered_whole(batch_id: str, prediction_ids: list[str], now: datetime, hits_location: str = "") -> BatchRecord:
    """The record of a batch the result cache answered whole (none is stored: no completion ever reads it)."""
    return BatchRecord(
        batch_id=batch_id,
        prediction_ids=prediction_ids,
        input_location="",
        created_at=now,
        hits_location=hits_location or None,
        answered_ids=prediction_ids,
    )


def promise_cached_batch(batch_id: str, prediction_ids: list[str], now: datetime) -> None:
    """Before the dispatcher finishes a batch the cache answered whole: should it die before counting it, the
    sweeper will."""
    try:
        usage_store().promise(_unit(batch_id), prediction_ids, now + PROMISE_GRACE)
    except DependencyError:  # counted all the same, unless the dispatcher also dies before that
        logger.warning("usage of a batch answered from the cache not promised", batch_id=batch_id)


def record_cached_batch(batch_id: str, prediction_ids: list[str], records: Iterable[Prediction], now: datetime) -> None:
    """Count a batch the cache answered whole from its records (those finished in it), keeping its promise even
    when none was."""
    answered = answered_whole(batch_id, prediction_ids, now)
    usage_store().record_once(_unit(batch_id), batch_usage(batch_id, records, answered, now), now)


def count_promised(now: datetime) -> int:
    """The sweeper's: count the promised batches whose dispatcher died before it did. A batch whose predictions
    are still running in it is looked at again later (its completion, the sweeper's, counts it first)."""
    store = usage_store()
    counted = 0
    for promised in store.promised_due(now, PROMISES_PER_SWEEP):
        batch_id = promised.unit.removeprefix("batch#")
        try:
            records = prediction_store().get_many(promised.subject_ids)
            if any(r.status is PredictionStatus.RUNNING and r.batch_id == batch_id for r in records.values()):
                store.promise_later(promised.unit, now + PROMISE_GRACE)
                continue
            record_cached_batch(batch_id, promised.subject_ids, records.values(), now)
            counted += 1
        except DependencyError:  # this one waits for the next sweep; the others go on
            logger.exception("promised usage not counted", batch_id=batch_id)
    if counted:
        logger.warning("usage counted for batches whose dispatcher died", count=counted)
        metrics.add_metric(name="PromisedUsageCounted", unit=MetricUnit.Count, value=counted)
    return counted


def answered_at_submit(prediction: Prediction) -> dict[str, Any]:
    """The usage of a waiting caller answered from the result cache at submit (no batch ever carries it): a write
    for the transaction that creates its record, so it is counted exactly once, and never without the record."""
    counts = UsageCounts(
        predictions=1, inputs=prediction.input_count, tokens=prediction.tokens, cache_hits=prediction.input_count
    )
    at = prediction.completed_at or prediction.created_at
    return usage_store().update(prediction.tenant_id, usage_day(at), counts)


def chunk_usage(lines: int, texts: int, tokens: int, cached: int) -> UsageCounts:
    computed = max(0, texts - cached)
    return UsageCounts(
        inputs=texts,
        tokens=tokens,
        cache_hits=cached,
        bulk_lines=lines,
        endpoint_us=endpoint_us(computed, get_settings().endpoint_items_per_second),
    )


def report(tenant_id: str, start: date, end: date) -> list[DayUsage]:
    """Each day from `start` to `end` (inclusive), days without usage as zeros."""
    if end < start:
        raise ValidationFailedError("end is before start", {"field": "end"})
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    if len(days) > MAX_DAYS:
        raise ValidationFailedError(f"at most {MAX_DAYS} days at once", {"field": "end"})
    found = usage_store().read(tenant_id, days)
    price = get_settings().instance_price_per_hour
    result = []
    for day in days:
        counts = found.get(day, UsageCounts())
        seconds = counts.endpoint_us / 1_000_000
        result.append(DayUsage(day, counts, round(seconds, 6), round(seconds / 3600 * price, 9)))
    return result
