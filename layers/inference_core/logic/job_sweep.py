"""The sweeper's part of the bulk path: expire jobs past their completion window, finish chunks whose notification
was lost (from what the endpoint left in S3, or as lost once nothing can still come), queue webhook events still
kept on job records, then let the driver assemble and launch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from inference_core.dal.jobs import OUTBOX_JOBS, WAITING_JOBS, job_store
from inference_core.dal.queue import job_commands
from inference_core.domain.clock import utc_now
from inference_core.domain.jobs import (
    EXPIRABLE,
    VALIDATION_STALE,
    VALIDATION_UNSTARTED,
    Job,
    JobSource,
    JobStatus,
    closes_at_once,
    completion_event,
)
from inference_core.logic import outbox
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

# Jobs read per partition per run.
_SWEEP_JOBS = 1000


@dataclass
class JobSweep:
    expired: int = 0
    validations_restarted: int = 0
    chunks_recovered: int = 0
    chunks_lost: int = 0
    assembled: int = 0
    launched: int = 0
    events_queued: int = 0
    errors: list[str] = field(default_factory=list)


def sweep_jobs(now: datetime | None = None) -> JobSweep:
    settings = get_settings()
    now = now or utc_now()
    sweep = JobSweep()
    window = timedelta(hours=settings.job_completion_window_hours)
    overdue = timedelta(seconds=settings.invocation_timeout_seconds + settings.sweep_margin_seconds)
    lost_after = overdue + timedelta(seconds=settings.request_ttl_seconds)
    store = job_store()
    open_jobs = [
        *store.active(limit=_SWEEP_JOBS),
        *store.active(limit=_SWEEP_JOBS, partition=WAITING_JOBS),
        *store.active(limit=_SWEEP_JOBS, partition=OUTBOX_JOBS, due_by=now),
    ]
    if not open_jobs:
        # The driver launches only active jobs' chunks, and there are none: without bulk work, the sweeper's cold
        # start stays off the bulk path (chunks, scheduling, assembly), as completion's does.
        return sweep
    from inference_core.logic import job_driver
    from inference_core.logic.job_chunks import Recovery, recover_chunk

    touched: list[str] = []
    for job in open_jobs:
        try:
            job = _expire_if_late(job, now, window, sweep)
            sweep.validations_restarted += _restart_validation(job, now)
            for chunk, started in sorted(job.running.items()):
                if now - started > overdue:
                    recovered = recover_chunk(job, chunk, now, lost=now - started > lost_after)
                    sweep.chunks_recovered += recovered is Recovery.RECOVERED
                    sweep.chunks_lost += recovered is Recovery.LOST
            sweep.events_queued += outbox.flush([job])
            touched.append(job.id)
        except Exception as exc:  # one job's trouble never stops the sweep of the others
            logger.exception("job sweep failed", job_id=job.id)
            metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
            sweep.errors.append(f"{job.id}: {type(exc).__name__}")
    settled = job_driver.settle(touched, now)
    sweep.launched, sweep.assembled = settled.launched, settled.assembled
    return sweep


def _restart_validation(job: Job, now: datetime) -> bool:
    """A job whose validation never started (the command that starts it was lost) or stopped with its function:
    send the command again (a second one is refused by the validation's own claim)."""
    if job.status is not JobStatus.VALIDATING or job.planned:
        return False
    if job.validation_started is None:
        if job.source is not JobSource.FILE and job.source is not JobSource.RETRY:
            return False  # an upload's or inbox file's validation starts from its S3 event, which S3 redelivers
        # A retry's input is built before its validation starts: give that the time a validation has.
        if now - job.created_at < (VALIDATION_STALE if job.source is JobSource.RETRY else VALIDATION_UNSTARTED):
            return False
    elif now - job.validation_started < VALIDATION_STALE:
        return False
    job_commands().send("build_retry" if job.source is JobSource.RETRY else "validate", job.id)
    logger.info("job validation restarted", job_id=job.id)
    return True


def _expire_if_late(job: Job, now: datetime, window: timedelta, sweep: JobSweep) -> Job:
    if job.created_at + window >= now or job.status not in EXPIRABLE:
        return job
    event = completion_event(job, JobStatus.EXPIRED) if closes_at_once(job.status) else None
    expired = job_store().expire(job, now, event)
    if expired is None:
        return job
    sweep.expired += 1
    outbox.flush([expired])
    return expired
