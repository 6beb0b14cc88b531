"""The one driver of the bulk path: after anything happens to a job (its file was planned, a chunk finished, it
was cancelled, the sweeper found something), assemble what is ready and fill the free places under the gate.

Scheduling, chunk finishing and assembly never call each other: they say what they did, and this loop does what
comes next. A chunk the cache answers whole is finished here, between two rounds of claims, so a re-run of a big
file is a loop, not a recursion; after `FINISH_IN_PLACE_SECONDS` of that, the rest goes on in a fresh
jobs-function invocation (a `settle` command).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from inference_core.dal.queue import job_commands
from inference_core.domain.batches import AsyncInferenceNotification
from inference_core.domain.clock import utc_now
from inference_core.errors import DependencyError
from inference_core.logic import capacity
from inference_core.logic.job_assembly import assemble_if_ready
from inference_core.logic.job_chunks import ChunkOutcome, complete_chunk, finish_chunk
from inference_core.logic.job_scheduling import ChunkScheduler
from inference_core.observability import MetricUnit, logger, metrics

# Every function that runs this loop has a longer timeout than this.
FINISH_IN_PLACE_SECONDS = 20.0


def on_notification(notification: AsyncInferenceNotification, now: datetime | None = None) -> ChunkOutcome:
    """A SageMaker notification for a job chunk: finish the chunk, then whatever it makes possible."""
    now = now or utc_now()
    outcome = complete_chunk(notification, now)
    # Also after a duplicate: the first delivery may have died between finishing the chunk and settling.
    settle([outcome.job_id], now)
    return outcome


@dataclass
class Settled:
    launched: int = 0  # chunks sent to the endpoint
    assembled: int = 0  # jobs finished


def settle(job_ids: Iterable[str], now: datetime | None = None) -> Settled:
    """Assemble these jobs if nothing is left to run, then launch chunks into the free places (of any job)."""
    now = now or utc_now()
    settled = Settled()
    for job_id in sorted(set(job_ids)):
        settled.assembled += _assemble(job_id, now)
    scheduler = ChunkScheduler.for_now(now)
    started = time.monotonic()
    finished_here: set[str] = set()
    while scheduler.has_work:
        if finished_here and time.monotonic() - started > FINISH_IN_PLACE_SECONDS:
            _continue_later(sorted({job.id for job in scheduler.jobs_waiting()}))
            break
        done = scheduler.fill()
        settled.launched += done.launched
        if not done.in_place:
            break  # the gate is full, or nothing more can go
        for item in done.in_place:
            try:
                finish_chunk(item.job, item.chunk, None, item.error, now)
            except Exception:  # the chunk stays running: the sweeper recovers it; the others go on
                logger.exception("a chunk could not be finished in place", job_id=item.job.id, chunk=item.chunk)
                metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
                continue
            scheduler.finished(item.job, item.chunk)
            finished_here.add(item.job.id)
    for job_id in sorted(finished_here):
        settled.assembled += _assemble(job_id, now)
    capacity.publish_backlog(scheduler.jobs)
    return settled


def _assemble(job_id: str, now: datetime) -> bool:
    """One job's assembly; its failure (retried by the sweeper's next round) never stops the others'."""
    try:
        return assemble_if_ready(job_id, now)
    except Exception:
        logger.exception("job assembly failed; the sweeper retries it", job_id=job_id)
        metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
        return False


def _continue_later(job_ids: list[str]) -> None:
    """Hand the rest of a long run of chunks finished in place to fresh jobs-function invocations (the sweeper's
    next round would also pick them up)."""
    for job_id in job_ids:
        try:
            job_commands().send("settle", job_id)
        except DependencyError:
            logger.warning("could not hand a job's launching on; the sweeper will", job_id=job_id)
