"""Usage per tenant and day: counted once per batch of predictions (completion, or the dispatcher for a batch the
result cache answered whole) and once per bulk chunk (in the transaction that finishes it), read back per day and
priced with the template's endpoint price."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from inference_core.dal.usage import usage_store
from inference_core.domain.batches import BatchRecord
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.domain.usage import UsageCounts, endpoint_ms, usage_day
from inference_core.errors import ValidationFailedError
from inference_core.settings import get_settings

MAX_DAYS = 366


@dataclass(frozen=True)
class DayUsage:
    day: date
    counts: UsageCounts
    endpoint_seconds: float
    cost_usd: float


def batch_usage(
    batch_id: str, records: Iterable[Prediction], batch: BatchRecord | None, now: datetime
) -> dict[tuple[str, date], UsageCounts]:
    """What the predictions this batch finished used: those that succeeded in it (the records say so however
    often, and by whom, they were finished)."""
    items_per_second = get_settings().endpoint_items_per_second
    usage: dict[tuple[str, date], UsageCounts] = defaultdict(UsageCounts)
    for record in records:
        if record.status is not PredictionStatus.SUCCEEDED or record.batch_id != batch_id:
            continue
        cached = 0
        if batch is not None and record.id in batch.answered_ids:
            cached = record.input_count
        elif batch is not None and record.id in batch.fill_keys:
            cached = max(0, record.input_count - len(batch.fill_keys[record.id]))
        counts = UsageCounts(
            predictions=1,
            inputs=record.input_count,
            tokens=record.tokens,
            cache_hits=cached,
            endpoint_ms=endpoint_ms(record.input_count - cached, items_per_second),
        )
        usage[(record.tenant_id, usage_day(record.completed_at or now))].add(counts)
    return dict(usage)


def record_batch(batch_id: str, records: Iterable[Prediction], batch: BatchRecord | None, now: datetime) -> None:
    usage = batch_usage(batch_id, records, batch, now)
    if usage:
        usage_store().record_once(f"batch#{batch_id}", usage, now)


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
        endpoint_ms=endpoint_ms(computed, get_settings().endpoint_items_per_second),
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
        seconds = counts.endpoint_ms / 1000
        result.append(DayUsage(day, counts, round(seconds, 3), round(seconds / 3600 * price, 9)))
    return result
