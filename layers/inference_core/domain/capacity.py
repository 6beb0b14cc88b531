"""How much of the endpoint bulk work may take, and in what order jobs get it: pure decisions, shared by the
scheduler (logic/job_scheduling.py) and the capacity simulation (bench/scale.py), which must decide alike.

- The gate: bulk chunks at the endpoint at once follow the instances in service. Each instance runs
  MaxConcurrentInvocationsPerInstance invocations at once; bulk may take all but one of them (SageMaker's own
  queue is first come, first served, so the slot left free is what an interactive batch finds), and at least one
  even with no instance (that chunk waits in SageMaker's queue, which makes it scale out from zero).
- Fairness: free places go to the job with the fewest chunks in flight, then to the one served least recently;
  one job holds at most all places but one, so a job that arrives finds one free at the next chunk boundary.
- The scaling signal: the bulk work waiting in S3 (chunks not yet sent), in seconds of one instance's time, per
  instance in service: what the bulk target-tracking policy keeps near its target.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from inference_core.domain.jobs import Job

T = TypeVar("T")


def bulk_places(instances: int, per_instance: int, cap: int) -> int:
    """Bulk chunks allowed at the endpoint at once, over all jobs."""
    return max(1, min(cap, instances * max(1, per_instance - 1)))


def places_per_job(places: int) -> int:
    return max(1, places - 1)


class FairQueue(Generic[T]):
    """Jobs waiting for a place: fewest chunks in flight first; among equals, the order they were offered in (the
    scheduler offers them least recently served first)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._order = itertools.count()

    def offer(self, in_flight: int, job: T) -> None:
        heapq.heappush(self._heap, (in_flight, next(self._order), job))

    def pop(self) -> T:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[T]:
        return (job for _, _, job in self._heap)


def bulk_backlog_seconds(inputs_waiting: int, items_per_second: float) -> float:
    """Seconds one instance needs for the bulk inputs waiting in S3 (not yet at the endpoint)."""
    return inputs_waiting / items_per_second if items_per_second > 0 else 0.0


def bulk_backlog_per_instance(inputs_waiting: int, items_per_second: float, instances: int) -> float:
    """The bulk scaling metric: seconds of bulk work waiting per instance in service (with none in service, per
    the one instance it would take: target tracking cannot scale from zero, a step policy does)."""
    return bulk_backlog_seconds(inputs_waiting, items_per_second) / max(1, instances)


def instances_for(backlog_seconds: float, target_per_instance: float, maximum: int) -> int:
    """What target tracking on that metric converges to: enough instances that each holds at most the target."""
    if backlog_seconds <= 0 or target_per_instance <= 0:
        return 0
    return min(maximum, math.ceil(backlog_seconds / target_per_instance))


@dataclass(frozen=True)
class BulkBacklog:
    """What the jobs and sweeper functions publish after each round of scheduling."""

    chunks: int  # chunks waiting in S3, all jobs
    inputs: int
    seconds_per_instance: float  # the metric the bulk scaling policy tracks
    per_job: dict[str, int] = field(default_factory=dict)  # chunks waiting, by job id


def bulk_backlog(jobs: Iterable[Job], items_per_second: float, instances: int) -> BulkBacklog:
    waiting = [job for job in jobs if job.status.runs_chunks]
    per_job = {job.id: job.chunk_count - job.next_chunk for job in waiting}
    inputs = sum(_inputs_waiting(job) for job in waiting)
    return BulkBacklog(
        chunks=sum(per_job.values()),
        inputs=inputs,
        seconds_per_instance=bulk_backlog_per_instance(inputs, items_per_second, instances),
        per_job=per_job,
    )


def _inputs_waiting(job: Job) -> int:
    """Inputs of the chunks not launched yet (chunks are cut to about the same number of inputs)."""
    if job.chunk_count == 0:
        return 0
    return round(job.input_count * (job.chunk_count - job.next_chunk) / job.chunk_count)
