"""Scheduling bulk chunks: fill the free places under the gate with chunks of active jobs, fairly, and send each
to the endpoint.

Interactive traffic comes first, twice over. Bulk chunks never flood the endpoint: the gate
(`domain.capacity.bulk_places`) follows the instances in service and leaves each instance a slot for interactive
batches (SageMaker's own queue is first come, first served), and the rest wait in S3. And chunks are sent with
`priority=bulk`, so the model container runs any waiting interactive batch before each next slice of a chunk.
Jobs share the places fairly (`domain.capacity.FairQueue`).

A chunk the result cache answers whole, or one the endpoint refuses, is not sent: the scheduler hands it back
as `InPlace`, to be finished by the caller (the driver), which then asks for more.

`ChunkScheduler` does its I/O through `Ports`, so the capacity simulation (bench/scale.py) runs this very loop
against simulated claims and a simulated endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from inference_core.dal import job_files
from inference_core.dal.endpoint import async_endpoint
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import object_store
from inference_core.domain.batches import BatchLine
from inference_core.domain.capacity import FairQueue, places_per_job
from inference_core.domain.jobs import Claim, ClaimResult, Job, json_line
from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.result_cache import CachePlanLine, missing, model_parameters
from inference_core.errors import DependencyError
from inference_core.logic import capacity
from inference_core.logic.job_chunks import chunk_inference_id
from inference_core.logic.result_cache import keys_for, lookup, record_lookup
from inference_core.observability import MetricUnit, logger, metrics

# A claim refused because another scheduler took the chunk: look at the job again this many times at most.
_MAX_REFUSALS = 8


@dataclass(frozen=True)
class InPlace:
    """A claimed chunk that was not sent: the cache answered every line (`error` None), or the endpoint refused
    it. Its place under the gate stays taken until it is finished."""

    job: Job
    chunk: int
    error: ErrorInfo | None = None


@dataclass
class Round:
    launched: int = 0
    in_place: list[InPlace] = field(default_factory=list)


class Ports(Protocol):
    """What scheduling reads and writes: the gate and job records, and the endpoint."""

    def claim(self, job: Job, places: int, now: datetime) -> ClaimResult: ...

    def refresh(self, job_id: str) -> Job | None: ...

    def send(self, job: Job, chunk: int, now: datetime) -> InPlace | None: ...


class StorePorts:
    """The product's: DynamoDB transactions on the gate and the job, the chunk objects, InvokeEndpointAsync."""

    def claim(self, job: Job, places: int, now: datetime) -> ClaimResult:
        return job_store().claim_chunk(job, places, now)

    def refresh(self, job_id: str) -> Job | None:
        return job_store().get(job_id)

    def send(self, job: Job, chunk: int, now: datetime) -> InPlace | None:
        return _send(job, chunk, now)


class ChunkScheduler:
    """Over one read of the active jobs, as many rounds of claims as the caller wants: each round fills the free
    places; chunks finished in place between rounds (`finished`) make room for the next."""

    def __init__(self, jobs: list[Job], places: int, ports: Ports, now: datetime) -> None:
        self.now = now
        self.places = places
        self.per_job = places_per_job(places)
        self.ports = ports
        self.jobs = jobs  # as this scheduler leaves them: their waiting chunks make the bulk backlog
        self._waiting: FairQueue[Job] = FairQueue()
        self._refusals = 0
        for job in jobs:  # least recently served first: ties go to them
            self._offer(job)

    @classmethod
    def for_now(cls, now: datetime) -> ChunkScheduler:
        return cls(job_store().active(), capacity.bulk_places_now(), StorePorts(), now)

    @property
    def has_work(self) -> bool:
        return bool(self._waiting)

    def jobs_waiting(self) -> list[Job]:
        return list(self._waiting)

    def fill(self) -> Round:
        """Claim and send chunks until the gate is full or no job can take another."""
        done = Round()
        while self._waiting:
            job = self._waiting.pop()
            claim = self.ports.claim(job, self.places, self.now)
            if claim.outcome is Claim.GATE_FULL:
                self._waiting.offer(len(job.running), job)
                break
            if claim.outcome is Claim.REFUSED:
                # Another scheduler took this chunk, or the job stopped: look again, a few times at most.
                self._refusals += 1
                fresh = self.ports.refresh(job.id) if self._refusals <= _MAX_REFUSALS else None
                if fresh is not None:
                    self._offer(fresh)
                continue
            job.next_chunk += 1
            job.running[claim.chunk] = self.now
            in_place = self.ports.send(job, claim.chunk, self.now)
            if in_place is None:
                done.launched += 1
            else:
                done.in_place.append(in_place)
            self._offer(job)
        if done.launched:
            metrics.add_metric(name="JobChunksLaunched", unit=MetricUnit.Count, value=done.launched)
        return done

    def finished(self, job: Job, chunk: int) -> None:
        """A chunk of `job` finished in place: its place is free, and the job may take another."""
        job.running.pop(chunk, None)
        if all(waiting is not job for waiting in self._waiting):
            self._offer(job)

    def _offer(self, job: Job) -> None:
        if job.status.runs_chunks and job.chunks_left and len(job.running) < self.per_job:
            self._waiting.offer(len(job.running), job)


def _send(job: Job, chunk: int, now: datetime) -> InPlace | None:
    """Send the chunk to the endpoint (None), or hand it back to be finished in place: every line was answered
    from the result cache, or the endpoint refused it."""
    try:
        sent_key = _what_the_cache_lacks(job, chunk, now)
        if sent_key is None:
            return InPlace(job, chunk)  # no invocation needed
        async_endpoint().invoke(object_store().uri(sent_key), chunk_inference_id(job.id, chunk), bulk=True)
        return None
    except DependencyError as exc:
        # The endpoint refused the chunk (after the SDK's own retries): its lines fail with the reason and can
        # be run again with POST /v1/jobs/{id}/retry.
        logger.warning("endpoint refused a job chunk", job_id=job.id, chunk=chunk, error=str(exc))
        return InPlace(
            job, chunk, ErrorInfo.of("dispatch_failed", f"the endpoint did not take this line's chunk: {exc}")
        )


def _what_the_cache_lacks(job: Job, chunk: int, now: datetime) -> str | None:
    """Look the chunk's texts up in the result cache and write what the endpoint must compute; returns that
    object's key, or None when nothing is left to compute.

    The chunk's cache plan (per line: the keys, as of now, and what the cache answered) is kept for finishing:
    the write-back uses these keys, so a deploy that changes the model revision while the chunk runs can never
    file its vectors under the new revision."""
    lines = list(job_files.chunk_lines(job.id, chunk))
    keys = {line.id: keys_for(job.tenant_id, line.parameters, line.inputs) for line in lines}
    wanted = [k for line_keys in keys.values() for k in line_keys or ()]
    cached = lookup(wanted, now) if wanted else {}
    objects = object_store()
    if wanted:
        plan = b"".join(
            json_line(CachePlanLine.of(line.id, line_keys, cached).to_document())
            for line in lines
            if (line_keys := keys[line.id])
        )
        try:
            objects.put(job_files.chunk_cache_key(job.id, chunk), plan, "application/jsonl")
        except DependencyError:
            logger.warning("chunk cache plan not stored; the model computes every line", job_id=job.id, chunk=chunk)
            cached = {}
    sent = bytearray()
    served = 0
    for line in lines:
        found = [cached.get(k) for k in keys[line.id] or ()] or [None] * len(line.inputs)
        served += sum(1 for entry in found if entry)
        if not all(found):
            to_compute = BatchLine(
                id=line.id, inputs=missing(line.inputs, found), parameters=model_parameters(line.parameters)
            )
            sent += to_compute.to_json().encode() + b"\n"
    record_lookup(len(wanted), served)
    if not sent:
        return None
    sent_key = job_files.chunk_sent_key(job.id, chunk)
    objects.put(sent_key, bytes(sent), "application/jsonl")
    return sent_key
