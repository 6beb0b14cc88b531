"""Dispatch: pack one SQS batch of predictions into one S3 object and one asynchronous endpoint invocation.

`plan_batch` decides, without I/O, what each message becomes; `send_batch` carries the plan out in one order
that leaves no race with completion: mark the batch's predictions `running`, write the batch input, invoke, then
record the batch; on a refused invocation hand exactly this batch's predictions back to `queued` (or, on the last
delivery SQS will make, to `failed` with the reason).

The backlog lane (predictions past their tenant's interactive share) is dispatched the same way, marked as bulk
for the container's interactive-first order, and its dispatcher then holds its place until the batch is done
(`hold_place`): with the lane's concurrency bounded, one tenant's burst never fills the endpoint's first come,
first served queue ahead of other tenants' interactive batches.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property

from inference_core.dal.batches import batch_store
from inference_core.dal.endpoint import async_endpoint
from inference_core.dal.objects import (
    batch_failure_prefix,
    batch_hits_key,
    batch_input_key,
    batch_output_key,
    object_store,
)
from inference_core.dal.predictions import prediction_store
from inference_core.dal.results import result_store
from inference_core.dal.table import BATCH_GET_LIMIT
from inference_core.domain.batches import BatchLine, BatchRecord, WorkItem
from inference_core.domain.clock import utc_now
from inference_core.domain.documents import InvalidDocument
from inference_core.domain.limits import Lane
from inference_core.domain.predictions import EXPIRED, ErrorInfo, Prediction, PredictionStatus
from inference_core.domain.result_cache import (
    CachedEmbedding,
    missing,
    model_parameters,
    partial_output,
    result_line,
)
from inference_core.errors import DependencyError, NotFoundError, PermanentDependencyError
from inference_core.logic import limits, outbox, usage
from inference_core.logic.result_cache import keys_for, lookup, lookup_failed, record_lookup
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings


@dataclass(frozen=True)
class QueuedMessage:
    """The parts of an SQS record that dispatching needs."""

    message_id: str
    body: str
    receive_count: int

    @cached_property
    def work(self) -> WorkItem | None:
        """The work item this message carries, or None when it is not one."""
        try:
            return WorkItem.from_json(self.body)
        except InvalidDocument:
            return None


class Skip(StrEnum):
    """Why a well-formed message is dropped without running (its message is deleted: nothing to retry)."""

    NO_RECORD = "no_record"
    TENANT_MISMATCH = "tenant_mismatch"
    DUPLICATE = "duplicate"
    NOT_QUEUED = "not_queued"


@dataclass(frozen=True)
class Send:
    message: QueuedMessage
    work: WorkItem
    record: Prediction


@dataclass(frozen=True)
class Expire:
    message: QueuedMessage
    prediction: Prediction


@dataclass
class BatchPlan:
    send: list[Send] = field(default_factory=list)
    expire: list[Expire] = field(default_factory=list)
    skip: dict[str, Skip] = field(default_factory=dict)  # message id -> why
    # Running under an attempt that may still hand it back: SQS delivers the message again later.
    retry: list[str] = field(default_factory=list)
    # Not a work item: failed alone, so SQS moves it to the DLQ for inspection after maxReceiveCount.
    reject: list[str] = field(default_factory=list)


@dataclass
class DispatchOutcome:
    failed_message_ids: list[str] = field(default_factory=list)
    batch_id: str | None = None
    dispatched: list[str] = field(default_factory=list)  # sent to the endpoint
    from_cache: list[str] = field(default_factory=list)  # finished from the result cache alone
    skipped: int = 0
    left_queue: list[Prediction] = field(default_factory=list)  # moved on by this delivery: running or expired


_PARALLEL_FINISHES = 16
# A batch record holds the keys to write back; past this many (32 bytes each) they would not fit in one item.
MAX_FILL_KEYS = 9_000


@dataclass
class CacheLookup:
    """How the result cache splits a batch: predictions it answers whole, in part, or not at all."""

    keys: dict[str, list[str]]  # prediction id -> one key per text, for predictions that use the cache
    found: dict[str, list[CachedEmbedding | None]]  # prediction id -> per text, for predictions with any hit
    whole: list[Send]
    to_model: list[Send]
    hits_body: bytes = b""
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # whole hits: their line in hits_body

    @classmethod
    def of(cls, sending: list[Send], cached: Mapping[str, CachedEmbedding]) -> CacheLookup:
        keys: dict[str, list[str]] = {}
        found: dict[str, list[CachedEmbedding | None]] = {}
        whole: list[Send] = []
        to_model: list[Send] = []
        for send in sending:
            pid = send.work.prediction_id
            line_keys = cache_keys(send.work)
            entries = [cached.get(k) for k in line_keys] if line_keys else []
            if line_keys:
                keys[pid] = line_keys
            if any(entries):
                found[pid] = entries
            (whole if entries and all(entries) else to_model).append(send)
        lookup = cls(keys, found, whole, to_model)
        body = bytearray()
        for pid, entries in found.items():
            line = result_line(pid, partial_output(entries))
            lookup.ranges[pid] = (len(body), len(body) + len(line) - 2)  # the newline is not part of the line
            body += line
        lookup.hits_body = bytes(body)
        return lookup

    def record(self) -> None:
        """The lookup's metrics (once per batch, whatever happens to the hits afterwards)."""
        hits = sum(1 for entries in self.found.values() for entry in entries if entry)
        record_lookup(sum(len(k) for k in self.keys.values()), hits)

    @property
    def partial(self) -> bool:
        return any(s.work.prediction_id in self.found for s in self.to_model)

    def texts_to_send(self, send: Send) -> list[str]:
        entries = self.found.get(send.work.prediction_id)
        if entries is None:
            return send.work.inputs
        return missing(send.work.inputs, entries)

    def fill_keys(self) -> dict[str, list[str]]:
        """The keys of the texts sent to the model, per prediction, for completion's write-back."""
        fill: dict[str, list[str]] = {}
        for send in self.to_model:
            pid = send.work.prediction_id
            if pid in self.keys:
                entries = self.found.get(pid) or [None] * len(self.keys[pid])
                fill[pid] = missing(self.keys[pid], entries)
        if sum(len(k) for k in fill.values()) > MAX_FILL_KEYS:
            logger.warning("batch too large to write back to the result cache", size=len(self.to_model))
            return {}
        return fill


def plan_batch(
    messages: list[QueuedMessage],
    records: dict[str, Prediction],
    now: datetime,
    ttl: timedelta,
    in_flight: timedelta = timedelta(0),
    invoked_batches: frozenset[str] = frozenset(),
) -> BatchPlan:
    """What each message becomes, given the status records read for the batch.

    A prediction marked `running` less than `in_flight` (the dispatcher's timeout) ago, in a batch not yet known
    to be invoked, may belong to an attempt that is still invoking and may requeue it; its duplicate message is
    kept for a later delivery instead of dropped, so a refused invocation never loses the only message left."""
    plan = BatchPlan()
    planned: set[str] = set()
    for message in messages:
        work = message.work
        if work is None:
            plan.reject.append(message.message_id)
            continue
        record = records.get(work.prediction_id)
        if record is None:
            plan.skip[message.message_id] = Skip.NO_RECORD
        elif record.tenant_id != work.tenant_id:
            plan.skip[message.message_id] = Skip.TENANT_MISMATCH
        elif work.prediction_id in planned:
            plan.skip[message.message_id] = Skip.DUPLICATE
        elif (
            record.status == PredictionStatus.RUNNING
            and record.started_at is not None
            and now - record.started_at < in_flight
            and record.batch_id not in invoked_batches
        ):
            plan.retry.append(message.message_id)
        elif record.status != PredictionStatus.QUEUED:
            # Cancelled, already dispatched (a duplicate delivery) or finished: nothing to do.
            plan.skip[message.message_id] = Skip.NOT_QUEUED
        elif now - record.created_at > ttl:
            plan.expire.append(Expire(message, record))
            planned.add(work.prediction_id)
        else:
            plan.send.append(Send(message, work, record))
            planned.add(work.prediction_id)
    return plan


def encode_batch(lines: list[BatchLine]) -> bytes:
    """JSON Lines framed by "\\n" alone: JSON escapes every "\\n" inside a string, so each line is one record."""
    return "".join(line.to_json() + "\n" for line in lines).encode()


def dispatch(
    messages: list[QueuedMessage], now: datetime | None = None, lane: Lane = Lane.INTERACTIVE
) -> DispatchOutcome:
    now = now or utc_now()
    wanted = [m.work.prediction_id for m in messages if m.work is not None]
    keys = {k for m in messages if m.work is not None for k in cache_keys(m.work) or ()}
    try:
        records, cached = _read_batch(wanted, keys, now) if wanted else ({}, {})
    except DependencyError:
        return DispatchOutcome(failed_message_ids=[m.message_id for m in messages])
    settings = get_settings()
    in_flight = timedelta(seconds=settings.dispatch_timeout_seconds)
    # Only duplicates of recently dispatched predictions need this read: is their batch known to be invoked?
    recent = {r.batch_id for r in records.values() if r.batch_id and r.started_at and now - r.started_at < in_flight}
    try:
        invoked = batch_store().existing(recent) if recent else frozenset()
    except DependencyError:
        return DispatchOutcome(failed_message_ids=[m.message_id for m in messages])
    plan = plan_batch(
        messages,
        records,
        now,
        ttl=timedelta(seconds=settings.prediction_ttl_seconds),
        in_flight=in_flight,
        invoked_batches=invoked,
    )
    for message_id in plan.reject:
        logger.error("malformed work item", message_id=message_id)
        metrics.add_metric(name="MalformedWorkItems", unit=MetricUnit.Count, value=1)
    for message_id, why in plan.skip.items():
        if why in {Skip.NO_RECORD, Skip.TENANT_MISMATCH}:
            logger.warning("work item without a status record", message_id=message_id, reason=why.value)
    outcome = send_batch(plan, now, cached, bulk=lane is Lane.BACKLOG)
    if lane is Lane.BACKLOG:
        limits.record_left_backlog(outcome.left_queue)  # before the wait: the tenant may queue more meanwhile
        if outcome.dispatched and outcome.batch_id:
            hold_place(outcome.batch_id)
    return outcome


def hold_place(
    batch_id: str, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic
) -> bool:
    """Wait until the endpoint has written the batch's output (a HEAD, polled more slowly as time passes) or its
    failure (a LIST, every few polls: failures are rare), at most `backlog_wait_seconds`. True when it is done.
    A read that fails is not retried: the place is let go rather than held on a guess."""
    settings = get_settings()
    store = object_store()
    started = clock()
    deadline = started + settings.backlog_wait_seconds
    delay = settings.backlog_poll_seconds
    polls = 0
    done = False
    try:
        while not done and clock() < deadline:
            sleep(min(delay, max(0.0, deadline - clock())))
            delay = min(delay * 2, _MAX_POLL_SECONDS)
            polls += 1
            done = store.size(batch_output_key(batch_id)) is not None
            if not done and polls % _POLLS_PER_FAILURE_CHECK == 0:
                done = store.find(batch_failure_prefix(batch_id)) is not None
    except (DependencyError, NotFoundError):
        logger.warning("backlog batch not watched to its end", batch_id=batch_id)
    waited = clock() - started
    metrics.add_metric(name="BacklogWaitSeconds", unit=MetricUnit.Seconds, value=waited)
    if not done:
        logger.info("backlog batch still running; its lane place is let go", batch_id=batch_id, waited=waited)
    return done


# The backlog lane's watch: a batch's output is looked for at most this often once it has run a while.
_MAX_POLL_SECONDS = 1.0
_POLLS_PER_FAILURE_CHECK = 5


def _read_batch(
    prediction_ids: list[str], keys: set[str], now: datetime
) -> tuple[dict[str, Prediction], dict[str, CachedEmbedding]]:
    """The batch's status records and cached results. While both fit in one BatchGetItem they are read together
    (the lookup costs no request); beyond that the cache is read on its own. Either way a cache that cannot be
    read is a miss: DependencyError only when the records cannot be read."""
    store = prediction_store()
    if keys and len(prediction_ids) + len(keys) <= BATCH_GET_LIMIT:
        try:
            return store.get_many_with_cached(prediction_ids, keys, now)
        except DependencyError as exc:
            lookup_failed(exc)
            return store.get_many(prediction_ids), {}
    return store.get_many(prediction_ids), lookup(sorted(keys), now) if keys else {}


def cache_keys(work: WorkItem) -> list[str] | None:
    """The cache keys of a work item's texts, or None when it does not use the cache."""
    return keys_for(work.tenant_id, work.parameters, work.inputs)


def send_batch(
    plan: BatchPlan, now: datetime, cached: Mapping[str, CachedEmbedding] | None = None, bulk: bool = False
) -> DispatchOutcome:
    store = prediction_store()
    outcome = DispatchOutcome(failed_message_ids=[*plan.reject, *plan.retry], skipped=len(plan.skip))
    expired: list[Prediction] = []
    for expiring in plan.expire:
        try:
            if moved_record := store.expire(expiring.prediction.id, EXPIRED, now, record=expiring.prediction):
                expired.append(moved_record)
            metrics.add_metric(name="PredictionsExpired", unit=MetricUnit.Count, value=1)
            outcome.skipped += 1
        except DependencyError:
            outcome.failed_message_ids.append(expiring.message.message_id)
    outbox.flush(expired)
    outcome.left_queue += expired
    if not plan.send:
        return outcome

    batch_id = str(uuid.uuid4())
    started = utc_now()
    records = {s.work.prediction_id: s.record for s in plan.send}
    marked = store.mark_running(list(records), batch_id, started, records)
    outbox.flush(marked.records.values())
    moved = set(marked.moved)
    unavailable = set(marked.unavailable)
    # Could not be marked: SQS redelivers them and they go out in a later batch.
    outcome.failed_message_ids += [s.message.message_id for s in plan.send if s.work.prediction_id in unavailable]
    # Refused: cancelled, or taken by a concurrent duplicate delivery, between our read and now.
    outcome.skipped += len(marked.refused)
    sending = [s for s in plan.send if s.work.prediction_id in moved]
    outcome.left_queue += [s.record for s in sending]
    if not sending:
        return outcome

    outcome.batch_id = batch_id
    lookup = CacheLookup.of(sending, cached or {})
    hits_location: str | None = None
    if lookup.hits_body:
        try:
            hits_location = object_store().put(batch_hits_key(batch_id), lookup.hits_body, "application/jsonlines")
        except (DependencyError, NotFoundError):
            # Without the hits object nothing can point at the cached results: the model computes them all.
            logger.warning("result cache hits not stored; sending the whole batch", batch_id=batch_id)
            lookup = CacheLookup.of(sending, {})
    lookup.record()  # what was served from the cache in the end
    if lookup.to_model:
        _send_to_model(lookup, batch_id, hits_location, started, now, outcome, bulk)
    if hits_location:
        # After the invocation, so the texts the model must compute are not kept waiting for these writes.
        outcome.failed_message_ids += _finish_from_cache(lookup, batch_id, hits_location, outcome)
    return outcome


def _record_cached_usage(batch_id: str, whole: list[str], finished: list[Prediction], now: datetime) -> None:
    """A batch the cache answered whole has no completion to count it: counted here, or by the sweeper from its
    promise (a batch sent to the model is counted by completion, its whole hits with it)."""
    try:
        usage.record_cached_batch(batch_id, whole, finished, now)
    except DependencyError:
        logger.exception("usage of a batch answered from the cache left to the sweeper", batch_id=batch_id)
        metrics.add_metric(name="UsageDeferred", unit=MetricUnit.Count, value=len(finished))


def _send_to_model(
    lookup: CacheLookup,
    batch_id: str,
    hits_location: str | None,
    started: datetime,
    now: datetime,
    outcome: DispatchOutcome,
    bulk: bool = False,
) -> None:
    """Write the batch input (the texts the cache did not answer), invoke the endpoint once, record the batch."""
    sending = lookup.to_model
    lines = [
        BatchLine(
            id=s.work.prediction_id, inputs=lookup.texts_to_send(s), parameters=model_parameters(s.work.parameters)
        )
        for s in sending
    ]
    try:
        location = object_store().put(batch_input_key(batch_id), encode_batch(lines), "application/jsonlines")
        async_endpoint().invoke(location, batch_id, bulk=bulk)
    except (DependencyError, NotFoundError) as exc:  # NotFound: the bucket is gone, a configuration error
        refusal = exc if isinstance(exc, DependencyError) else PermanentDependencyError(exc.message, reason="no bucket")
        _give_back(sending, batch_id, refusal, now)
        outcome.failed_message_ids += [s.message.message_id for s in sending]
        return
    # Recorded only once invoked, so a batch record proves its predictions reached the endpoint.
    try:
        batch_store().put(
            BatchRecord(
                batch_id=batch_id,
                # With the whole hits, finished right after this: should this function die first, completion (or
                # the sweeper) finishes them from the hits object.
                prediction_ids=[line.id for line in lines] + [s.work.prediction_id for s in lookup.whole],
                input_location=location,
                created_at=now,
                hits_location=hits_location,
                answered_ids=[s.work.prediction_id for s in lookup.whole] if hits_location else [],
                partial_hits=lookup.partial,
                fill_keys=lookup.fill_keys(),
            )
        )
    except DependencyError:
        # Invoked all the same: completion retries until the record exists, else the sweeper finishes the batch.
        logger.exception("batch invoked but not recorded", batch_id=batch_id)
        metrics.add_metric(name="UnrecordedBatches", unit=MetricUnit.Count, value=1)

    outcome.dispatched = [s.work.prediction_id for s in sending]
    for send in sending:
        queue_ms = max(0, int((started - send.work.created_at).total_seconds() * 1000))
        metrics.add_metric(name="QueueTime", unit=MetricUnit.Milliseconds, value=queue_ms)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(lines))
    metrics.add_metric(name="EndpointInvocations", unit=MetricUnit.Count, value=1)
    logger.info("batch dispatched", batch_id=batch_id, size=len(lines), skipped=outcome.skipped, bulk=bulk)


def _finish_from_cache(lookup: CacheLookup, batch_id: str, hits_location: str, outcome: DispatchOutcome) -> list[str]:
    """Succeed the predictions the cache answered whole (in parallel), pointing at their line of the hits object.
    Returns the messages to deliver again: predictions that could not be finished are handed back to `queued`."""
    store = prediction_store()
    completed_at = utc_now()
    inline_max = get_settings().inline_output_max_bytes
    whole = [s.work.prediction_id for s in lookup.whole]
    counted_here = not lookup.to_model  # else its completion counts it
    if counted_here:
        usage.promise_cached_batch(batch_id, whole, completed_at)

    def finish(send: Send) -> Prediction | bool:
        """The finished record; False when it had moved on; True when it must go back to the queue."""
        pid = send.work.prediction_id
        start, end = lookup.ranges[pid]
        try:
            if end - start + 1 <= inline_max:
                return (
                    store.succeed(pid, batch_id, hits_location, (start, end), completed_at, record=send.record) or False
                )
            # As completion does: too large to inline in a response, a copy of its own behind a link.
            location = result_store().put_standalone(pid, partial_output(lookup.found[pid]))
            return store.succeed(pid, batch_id, location, None, completed_at, record=send.record) or False
        except Exception:  # this one alone goes back to the queue; the others still finish
            logger.exception("a prediction answered from the cache could not be finished", prediction_id=pid)
            store.requeue([pid], batch_id)  # reports, never raises; if it fails too, completion finishes it
            return True

    again: list[str] = []
    finished: list[Prediction] = []
    with ThreadPoolExecutor(max_workers=min(_PARALLEL_FINISHES, len(lookup.whole) or 1)) as pool:
        for send, moved in zip(lookup.whole, pool.map(finish, lookup.whole), strict=True):
            if moved is True:
                again.append(send.message.message_id)
            elif isinstance(moved, Prediction):
                finished.append(moved)
                outcome.from_cache.append(send.work.prediction_id)
                metrics.add_metric(name="PredictionsSucceeded", unit=MetricUnit.Count, value=1)
    outbox.flush(finished)
    if counted_here:
        _record_cached_usage(batch_id, whole, finished, completed_at)
    if lookup.whole:
        logger.info("predictions answered from the result cache", batch_id=batch_id, count=len(outcome.from_cache))
    return again


def _give_back(sending: list[Send], batch_id: str, exc: DependencyError, now: datetime) -> None:
    """The invocation was refused: requeue the batch's predictions for SQS's next delivery, or, on the last delivery
    SQS will make, fail them with the reason so the user sees why the message went to the DLQ."""
    max_receive_count = get_settings().max_receive_count
    logger.warning("batch not dispatched", reason=exc.reason, aws_error=exc.aws_error, size=len(sending))
    metrics.add_metric(name="DispatchFailures", unit=MetricUnit.Count, value=len(sending))
    store = prediction_store()
    last = [s for s in sending if s.message.receive_count >= max_receive_count]
    again = [s.work.prediction_id for s in sending if s.message.receive_count < max_receive_count]
    stuck = store.requeue(again, batch_id).unavailable
    failed: list[Prediction] = []
    for send in last:
        error = ErrorInfo.of(
            "dispatch_failed",
            f"the model endpoint could not take the request after {send.message.receive_count} attempts: {exc.reason}",
        )
        try:
            if moved := store.fail(send.work.prediction_id, error, now, batch_id=batch_id, record=send.record):
                failed.append(moved)
        except DependencyError:
            stuck.append(send.work.prediction_id)
    outbox.flush(failed)
    if stuck:
        # Left `running` with no invocation behind them: the sweeper finds and fails them.
        logger.error("predictions left running after a refused invocation", prediction_ids=stuck, batch_id=batch_id)
