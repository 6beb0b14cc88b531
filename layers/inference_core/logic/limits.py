"""Tenant limits: what a tenant may do per minute and at once, decided before anything is created.

Requests and inputs per minute are counted on one DynamoDB item per tenant and one-minute window with a
conditional UpdateItem (`dal.limits`): every API instance sees the same count, so together they never admit more
than the limit in a window (a burst may meet the limit twice at a window's edge: one window's slack). A refused
request counts nothing and creates nothing. Open bulk jobs are counted on the tenant index when a job is created
(jobs older than the completion window have ended by then).

The same count decides a prediction's lane: past its interactive share of the minute (inputs actually sent, kept
apart from what allowances take ahead) a tenant's predictions wait in the backlog lane, whose consumer never holds
more than a few places at the endpoint, so one tenant's burst does not delay the others' interactive work. A tenant
past its share may have at most `queued_inputs` waiting in that lane: counted per window on the same items (inputs
enqueued, and inputs that left the lane as the dispatcher reports them), summed over the windows of the prediction
TTL, read at most every few seconds per process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inference_core.dal.limits import limit_store
from inference_core.domain.clock import utc_now
from inference_core.domain.limits import (
    LIMIT_NAMES,
    Lane,
    RateState,
    TenantLimits,
    backlog_windows,
    waiting_inputs,
    window_start,
)
from inference_core.domain.predictions import Prediction
from inference_core.errors import DependencyError, RateLimitedError, ValidationFailedError
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

if TYPE_CHECKING:  # the dispatcher imports this module and never creates jobs: job code stays off its cold start
    from inference_core.dal.idempotency import IdempotencyClaim
    from inference_core.domain.jobs import Job

# A tenant's overrides are read at most this often per process: a change takes effect within this long.
LIMITS_CACHE_SECONDS = 30.0
# The most requests one process takes from a tenant's minute at once.
MAX_LEASE = 20
_cache: dict[str, tuple[TenantLimits, float]] = {}
_CACHE_LIMIT = 10_000


def defaults() -> TenantLimits:
    settings = get_settings()
    return TenantLimits(
        requests_per_minute=settings.tenant_requests_per_minute,
        inputs_per_minute=settings.tenant_inputs_per_minute,
        open_jobs=settings.tenant_open_jobs,
        interactive_inputs_per_minute=settings.tenant_interactive_inputs_per_minute,
        queued_inputs=settings.tenant_queued_inputs,
    )


def limits_of(tenant_id: str, clock: Callable[[], float] = time.monotonic) -> TenantLimits:
    cached = _cache.get(tenant_id)
    if cached and clock() - cached[1] < LIMITS_CACHE_SECONDS:
        return cached[0]
    limits = defaults().with_overrides(limit_store().overrides(tenant_id))
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[tenant_id] = (limits, clock())
    return limits


def clear_cache() -> None:
    _cache.clear()
    _allowances.clear()
    _backlogs.clear()


@dataclass
class _Allowance:
    """Requests and inputs this process took from the tenant's minute ahead of use, and the count it then saw."""

    window: datetime
    requests: int
    inputs: int
    seen: RateState
    spent_inputs: int = 0  # sent since the count, not yet reported as `used`


_allowances: dict[str, _Allowance] = {}
_allowances_lock = threading.Lock()  # the API runs blocking calls on a thread pool


def lease_size(limit: int) -> int:
    """How much of a minute one process takes at once: 1/200th of the limit, at most MAX_LEASE (exact counting,
    one write per request, for limits under 400 a minute)."""
    return max(1, min(MAX_LEASE, limit // 200))


def _spend(tenant_id: str, window: datetime, inputs: int) -> RateState | None:
    with _allowances_lock:
        allowance = _allowances.get(tenant_id)
        if allowance is None or allowance.window != window or allowance.requests < 1 or allowance.inputs < inputs:
            return None
        allowance.requests -= 1
        allowance.inputs -= inputs
        allowance.spent_inputs += inputs
        return replace(allowance.seen, used=allowance.seen.used + allowance.spent_inputs)


def _give_back(tenant_id: str, window: datetime, inputs: int) -> None:
    """Return a counted request to this process's allowance (refused after it was counted): the next request
    spends it, and its inputs are taken off what the next count reports as used."""
    with _allowances_lock:
        allowance = _allowances.get(tenant_id)
        if allowance is not None and allowance.window == window:
            allowance.requests += 1
            allowance.inputs += inputs
            allowance.spent_inputs -= inputs


def _unreported(tenant_id: str, window: datetime) -> int:
    """Inputs this process sent from its last allowance in this window, reported with its next count."""
    with _allowances_lock:
        allowance = _allowances.get(tenant_id)
        return allowance.spent_inputs if allowance is not None and allowance.window == window else 0


def count(tenant_id: str, inputs: int = 0, now: datetime | None = None) -> RateState:
    """Count one request (and its inputs) against the tenant's minute, or raise RateLimitedError counting nothing.

    A busy process takes a small allowance of the minute at once (`lease_size`) and spends it locally, so most
    requests cost no write; what it took counts for every instance, so together they still never pass the limit
    (an allowance unspent at the minute's end only refuses others a little early). When the allowance no longer
    fits, the request is counted alone, exactly."""
    now = now or utc_now()
    limits = limits_of(tenant_id)
    if inputs > limits.inputs_per_minute:
        raise ValidationFailedError(
            f"a request of {inputs} inputs is more than this tenant may send in a minute "
            f"({limits.inputs_per_minute}): split it",
            {"param": "input", "limit": limits.inputs_per_minute},
        )
    window = window_start(now)
    spent = _spend(tenant_id, window, inputs)
    if spent is not None:
        return spent
    requests = lease_size(limits.requests_per_minute)
    # Inputs ahead of use too, so the next requests (of a few texts each) can spend the allowance.
    extra_inputs = min(limits.inputs_per_minute // 200, MAX_LEASE * 32) if requests > 1 else 0
    store = limit_store()
    used = inputs + _unreported(tenant_id, window)
    state = store.count(tenant_id, window, inputs + extra_inputs, limits, requests, used)
    if state.refused is not None and requests > 1:
        requests, extra_inputs = 1, 0
        state = store.count(tenant_id, window, inputs, limits, used=used)
    if state.refused is None:
        with _allowances_lock:
            _allowances[tenant_id] = _Allowance(window, requests - 1, extra_inputs, state)
    if state.refused is not None:
        limit = limits.requests_per_minute if state.refused == "requests" else limits.inputs_per_minute
        raise RateLimitedError(
            f"rate limit reached: {limit} {state.refused} per minute for this tenant; retry after "
            f"{state.retry_after(now)} s",
            state.retry_after(now),
            state.headers(now),
            {"limit": state.refused},
        )
    return state


def admit(tenant_id: str, inputs: int = 0, now: datetime | None = None) -> RateState:
    """`count` the request, then, when it goes to the backlog lane, hold it to the tenant's queued inputs: a
    request that would pass them is refused (429 `queued_inputs`) and its count given back."""
    now = now or utc_now()
    state = count(tenant_id, inputs, now)
    if state.lane is Lane.BACKLOG and inputs:
        _reserve_backlog(tenant_id, state, inputs, now)
    return state


# A process reads a tenant's backlog at most this often; what it enqueues itself it adds at once.
BACKLOG_CACHE_SECONDS = 5.0
# While the lane is full a retry is worth this long a wait: its dispatchers free places batch by batch.
QUEUED_RETRY_SECONDS = 30
_backlogs: dict[str, tuple[int, float]] = {}  # tenant -> (inputs waiting in the backlog lane, read at)


def _reserve_backlog(
    tenant_id: str, state: RateState, inputs: int, now: datetime, clock: Callable[[], float] = time.monotonic
) -> None:
    limit = state.limits.queued_inputs
    with _allowances_lock:
        cached = _backlogs.get(tenant_id)
    if cached is None or clock() - cached[1] >= BACKLOG_CACHE_SECONDS:
        ttl = timedelta(seconds=get_settings().prediction_ttl_seconds)
        try:
            waiting = waiting_inputs(limit_store().backlog(tenant_id, backlog_windows(now, ttl)))
        except DependencyError:
            # Not refused on a guess: the backlog lane's bounded places still keep the others' work first.
            logger.warning("backlog not read; request admitted", tenant_id=tenant_id)
            metrics.add_metric(name="BacklogNotRead", unit=MetricUnit.Count, value=1)
            return
        cached = (waiting, clock())
    waiting, read_at = cached
    if waiting + inputs > limit:
        _give_back(tenant_id, window_start(now), inputs)
        raise RateLimitedError(
            f"queued inputs limit reached: this tenant has {waiting} inputs waiting in the backlog lane and may "
            f"have {limit}; retry after {QUEUED_RETRY_SECONDS} s, or send volume as a bulk job",
            QUEUED_RETRY_SECONDS,
            state.headers(now),
            {"limit": "queued_inputs", "queued_inputs": limit},
        )
    with _allowances_lock:
        # Taken now, before the enqueue: concurrent requests of this process see it at once.
        _backlogs[tenant_id] = (waiting + inputs, read_at)
        if len(_backlogs) > _CACHE_LIMIT:
            _backlogs.clear()


def record_backlog(tenant_id: str, created_at: datetime, inputs: int) -> None:
    """A prediction was enqueued to the backlog lane: counted for every process. A failed write is logged, not
    raised (the prediction is queued already); the lane then counts a little short until the window ages out."""
    try:
        limit_store().add_backlog(tenant_id, window_start(created_at), enqueued=inputs)
    except DependencyError:
        logger.warning("backlog lane prediction not counted", tenant_id=tenant_id)
        metrics.add_metric(name="BacklogNotCounted", unit=MetricUnit.Count, value=1)


def record_left_backlog(predictions: Iterable[Prediction]) -> None:
    """Predictions that left the backlog lane (the dispatcher moved them on, or they expired): one write per
    tenant and window they were created in, usually one per batch."""
    left: Counter[tuple[str, datetime]] = Counter()
    for prediction in predictions:
        left[prediction.tenant_id, window_start(prediction.created_at)] += prediction.input_count
    for (tenant_id, window), inputs in left.items():
        try:
            limit_store().add_backlog(tenant_id, window, left=inputs)
        except DependencyError:
            # Counted as waiting until the window ages out of the prediction TTL: stricter, never lost work.
            logger.warning("predictions that left the backlog lane not counted", tenant_id=tenant_id)
            metrics.add_metric(name="BacklogLeftNotCounted", unit=MetricUnit.Count, value=inputs)


def create_job(job: Job, claim: IdempotencyClaim | None = None) -> bool:
    """Write a new job or batch (False: one with its id exists) while its tenant has fewer open than it may: the
    job joins the tenant's open-job set in its own transaction, so concurrent creates never pass the limit. A full
    set is first cleared of jobs that have finished since they joined."""
    from inference_core.dal.jobs import OpenJobsFull, job_store  # here: the dispatcher imports this module

    limit = limits_of(job.tenant_id).open_jobs
    store = job_store()
    try:
        return store.create(job, claim, open_limit=limit)
    except OpenJobsFull:
        if not _close_finished_jobs(job.tenant_id, job.created_at):
            raise _too_many_jobs(limit) from None
    try:
        return store.create(job, claim, open_limit=limit)
    except OpenJobsFull:
        raise _too_many_jobs(limit) from None


def _close_finished_jobs(tenant_id: str, now: datetime) -> bool:
    """Take the tenant's finished jobs out of its open set; whether there were any. A job older than its window
    (and an hour) counts as finished (the sweeper expires it); one whose record is not there counts as open until
    then: a batch read may see a concurrent create's set entry before its record."""
    from inference_core.dal.jobs import job_store

    store = job_store()
    open_jobs = store.open_jobs(tenant_id)
    records = store.get_many(open_jobs)
    stale_before = now - timedelta(hours=get_settings().job_completion_window_hours + 1)
    finished = {
        job_id: created
        for job_id, created in open_jobs.items()
        if created < stale_before or ((job := records.get(job_id)) is not None and job.status.is_terminal)
    }
    if finished:
        store.close_open_jobs(tenant_id, finished)
    return bool(finished)


def _too_many_jobs(limit: int) -> RateLimitedError:
    return RateLimitedError(
        f"this tenant has {limit} bulk jobs or batches open, as many as it may: retry when one has finished",
        60,
        details={"limit": "open_jobs", "open_jobs": limit},
    )


def set_limits(tenant_id: str, overrides: dict[str, int | None]) -> TenantLimits:
    """An operator's override per limit (None: back to the template's default); the limits as they now are."""
    unknown = set(overrides) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}")
    for name, value in overrides.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1")
    stored = limit_store().set_overrides(tenant_id, overrides)
    _cache.pop(tenant_id, None)
    return defaults().with_overrides(stored)
