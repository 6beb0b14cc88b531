"""Running bulk jobs: launch chunks under the gate, finish them from notifications, assemble the result files.

Interactive traffic comes first, twice over. Bulk chunks never flood the endpoint: at most
`job_max_in_flight_chunks` are at SageMaker at once (its own queue is first come, first served) and the rest wait in
S3, so an interactive batch always finds a free invocation slot (the bound is below the endpoint's concurrent
invocations per instance). And chunks are sent with `priority=bulk`, so the model container runs any waiting
interactive batch before each next slice of a chunk.

Jobs share those places fairly: one job holds at most all places but one (so a job that arrives finds one free at
the next chunk boundary), and free places go to the job with the fewest chunks in flight, then to the one served
least recently.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from inference_core.dal import job_files
from inference_core.dal.endpoint import async_endpoint
from inference_core.dal.jobs import WAITING_JOBS, Claim, job_store
from inference_core.dal.objects import batch_failure_prefix, batch_output_key, object_store, parse_s3_uri
from inference_core.dal.queue import job_commands
from inference_core.dal.webhook_events import EventMessage, webhook_events
from inference_core.domain.batches import AsyncInferenceNotification, BatchLine, InvocationStatus, ResultLine
from inference_core.domain.clock import utc_now
from inference_core.domain.jobs import Job, JobStatus, split_chunk_line_id
from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.result_cache import (
    CachedEmbedding,
    CachePlanLine,
    fresh_entries,
    is_complete,
    merge,
    missing,
    model_parameters,
)
from inference_core.domain.webhooks import WebhookEvent, webhook_id
from inference_core.errors import DependencyError, NotFoundError
from inference_core.logic.predictions import encode_output
from inference_core.logic.result_cache import keys_for, lookup, record_lookup, write_back
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

JOB_PREFIX = "job_"
PROGRESS_EVERY = timedelta(seconds=30)
# Chunks the cache answers whole are finished inside the function that launches them; past this many seconds of
# that, the rest goes on in a fresh jobs-function invocation (every function that launches has a longer timeout).
FINISH_IN_PLACE_SECONDS = 20.0
# A chunk object or output is at most a chunk's worth of lines (a few MB); a line is at most this long.
_MAX_LINE_BYTES = 64 * 1024 * 1024
_MAX_CHUNK_BYTES = 512 * 1024 * 1024
# Someone assembling for longer than this is taken to have died (a Lambda stops at 15 minutes).
ASSEMBLY_STALE = timedelta(minutes=16)
_MISSING_OUTPUT = ErrorInfo.of("missing_output", "the model returned no result for this line")
_FINAL_STATUS = {
    JobStatus.IN_PROGRESS: (JobStatus.FINALIZING, JobStatus.COMPLETED),
    JobStatus.FINALIZING: (JobStatus.FINALIZING, JobStatus.COMPLETED),
    JobStatus.CANCELLING: (JobStatus.CANCELLING, JobStatus.CANCELLED),
    JobStatus.EXPIRED: (JobStatus.EXPIRED, JobStatus.EXPIRED),
}


def chunk_inference_id(job_id: str, chunk: int) -> str:
    return f"{job_id}-{chunk}"


def is_job_chunk(inference_id: str) -> bool:
    return inference_id.startswith(JOB_PREFIX)


def parse_chunk_inference_id(inference_id: str) -> tuple[str, int]:
    job_id, _, chunk = inference_id.rpartition("-")
    if not job_id.startswith(JOB_PREFIX) or not chunk.isdigit():
        raise ValueError(f"not a job chunk: {inference_id!r}")
    return job_id, int(chunk)


# -- launching -------------------------------------------------------------------------------------------------------


def launch(now: datetime | None = None) -> int:
    """Fill the free places under the gate with chunks of active jobs, fairly. Returns how many were launched."""
    settings = get_settings()
    store = job_store()
    now = now or utc_now()
    per_job = max(1, settings.job_max_in_flight_chunks - 1)
    runnable = [
        job for job in store.active() if job.status.runs_chunks and job.chunks_left and len(job.running) < per_job
    ]
    order = itertools.count()
    # Fewest chunks in flight first; among equals, the order `active()` gives (least recently served first).
    waiting = [(len(job.running), next(order), job) for job in runnable]
    heapq.heapify(waiting)
    launched = 0
    refusals = 0
    finished_here: set[str] = set()
    started = time.monotonic()
    while waiting:
        _, _, job = heapq.heappop(waiting)
        if finished_here and time.monotonic() - started > FINISH_IN_PLACE_SECONDS:
            _continue_later([job, *(queued for _, _, queued in waiting)])
            break
        claim = store.claim_chunk(job, settings.job_max_in_flight_chunks, now)
        if claim.outcome is Claim.GATE_FULL:
            break
        if claim.outcome is Claim.REFUSED:
            # Another scheduler took this chunk, or the job stopped: look again, a few times at most.
            refusals += 1
            fresh = store.get(job.id) if refusals <= 8 else None
            if fresh is not None and fresh.status.runs_chunks and fresh.chunks_left and len(fresh.running) < per_job:
                heapq.heappush(waiting, (len(fresh.running), next(order), fresh))
            continue
        job.next_chunk += 1
        if _invoke_chunk(job, claim.chunk, now):
            launched += 1
            job.running[claim.chunk] = now
        else:
            finished_here.add(job.id)  # its place under the gate is already free again
        if job.chunks_left and len(job.running) < per_job:
            heapq.heappush(waiting, (len(job.running), next(order), job))
    for job_id in finished_here:
        _assemble_if_ready(job_id, now)
    if launched:
        metrics.add_metric(name="JobChunksLaunched", unit=MetricUnit.Count, value=launched)
    return launched


def _continue_later(jobs: list[Job]) -> None:
    """Hand the rest of a long run of chunks finished in place to fresh jobs-function invocations (the sweeper's
    next launch would also pick them up)."""
    for job in jobs:
        try:
            job_commands().send("settle", job.id)
        except DependencyError:
            logger.warning("could not hand a job's launching on; the sweeper will", job_id=job.id)


def _invoke_chunk(job: Job, chunk: int, now: datetime) -> bool:
    """Send the chunk to the endpoint (True), or finish it here (False): every line was answered from the result
    cache, or the endpoint refused it. Finishing here does not launch again: the caller's loop goes on."""
    objects = object_store()
    try:
        sent_key = _what_the_cache_lacks(job, chunk, now)
        if sent_key is None:
            finish_chunk(job, chunk, None, None, now, then_settle=False)  # no invocation needed
            return False
        async_endpoint().invoke(objects.uri(sent_key), chunk_inference_id(job.id, chunk), bulk=True)
        return True
    except DependencyError as exc:
        # The endpoint refused the chunk (after the SDK's own retries): its lines fail with the reason and can
        # be run again with POST /v1/jobs/{id}/retry; the place under the gate is given back.
        logger.warning("endpoint refused a job chunk", job_id=job.id, chunk=chunk, error=str(exc))
        error = ErrorInfo.of("dispatch_failed", f"the endpoint did not take this line's chunk: {exc}")
        finish_chunk(job, chunk, None, error, now, then_settle=False)
        return False


def _what_the_cache_lacks(job: Job, chunk: int, now: datetime) -> str | None:
    """Look the chunk's texts up in the result cache and write what the endpoint must compute; returns that
    object's key, or None when nothing is left to compute.

    The chunk's cache plan (per line: the keys, as of now, and what the cache answered) is kept for finishing:
    the write-back uses these keys, so a deploy that changes the model revision while the chunk runs can never
    file its vectors under the new revision."""
    lines = list(_chunk_lines(job.id, chunk))
    keys = {line.id: keys_for(job.tenant_id, line.parameters, line.inputs) for line in lines}
    wanted = [k for line_keys in keys.values() for k in line_keys or ()]
    cached = lookup(wanted, now) if wanted else {}
    objects = object_store()
    if wanted:
        plan = b"".join(
            _json_line(CachePlanLine.of(line.id, line_keys, cached).model_dump(exclude_none=True))
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
            sent += to_compute.model_dump_json().encode() + b"\n"
    record_lookup(len(wanted), served)
    if not sent:
        return None
    sent_key = job_files.chunk_sent_key(job.id, chunk)
    objects.put(sent_key, bytes(sent), "application/jsonl")
    return sent_key


# -- finishing chunks -----------------------------------------------------------------------------------------------


@dataclass
class ChunkOutcome:
    job_id: str
    chunk: int
    finished: bool = False
    completed: int = 0
    failed: int = 0


def complete_chunk(notification: AsyncInferenceNotification, now: datetime | None = None) -> ChunkOutcome:
    """A SageMaker notification for a job chunk -> its part files and the job's counters (exactly once)."""
    now = now or utc_now()
    job_id, chunk = parse_chunk_inference_id(notification.inference_id)
    outcome = ChunkOutcome(job_id, chunk)
    job = job_store().get(job_id)
    if job is None or chunk not in job.running:
        logger.info("job chunk already finished or unknown", job_id=job_id, chunk=chunk)
        return outcome  # a duplicate or late notification: nothing to do
    if notification.invocation_status is InvocationStatus.COMPLETED:
        location = notification.response_parameters.output_location
        if not location:
            raise ValueError("a Completed notification without responseParameters.outputLocation")
        result = finish_chunk(job, chunk, location, None, now)
    else:
        reason = notification.failure_reason or "the model endpoint failed the chunk"
        result = finish_chunk(job, chunk, None, ErrorInfo.of("inference_failed", reason), now)
    return result


def finish_chunk(
    job: Job,
    chunk: int,
    output_location: str | None,
    error: ErrorInfo | None,
    now: datetime,
    then_settle: bool = True,
) -> ChunkOutcome:
    """Write the chunk's part files (from its output and the cache's answers, or every line the cache did not
    answer failed with `error`), write the fresh vectors back, move the counters, then (`then_settle`) assemble the
    job if that was its last chunk and launch whatever the freed place allows."""
    outcome = ChunkOutcome(job.id, chunk)
    results = _read_results(output_location) if output_location else {}
    plan = _read_cache_plan(job.id, chunk)
    fresh: dict[str, CachedEmbedding] = {}
    objects = object_store()
    with (
        objects.writer(job_files.part_key(job.id, chunk, "output"), "application/jsonl") as out,
        objects.writer(job_files.part_key(job.id, chunk, "errors"), "application/jsonl") as errs,
    ):
        for line in _chunk_lines(job.id, chunk):
            number, custom_id = split_chunk_line_id(line.id)
            raw_output, line_error = _line_output(plan.get(line.id), results.get(line.id), error, fresh)
            if raw_output is None:
                errs.write(_error_line(number, custom_id, line_error or _MISSING_OUTPUT))
                outcome.failed += 1
                continue
            output = encode_output(raw_output, str(line.parameters.get("encoding_format", "float")))
            out.write(_json_line({"custom_id": custom_id, "line": number, "output": output}))
            outcome.completed += 1
        out.close()
        errs.close()
    write_back(fresh, now, at_once=True)  # the chunks launched next look these up
    outcome.finished = job_store().finish_chunk(job.id, chunk, outcome.completed, outcome.failed)
    if outcome.finished:
        metrics.add_metric(name="JobLinesCompleted", unit=MetricUnit.Count, value=outcome.completed)
        metrics.add_metric(name="JobLinesFailed", unit=MetricUnit.Count, value=outcome.failed)
        logger.info(
            "job chunk finished", job_id=job.id, chunk=chunk, completed=outcome.completed, failed=outcome.failed
        )
        _progress_event(job, now)
        if then_settle:
            settle(job.id, now)
    return outcome


def _progress_event(job: Job, now: datetime) -> None:
    """`job.progress` for webhooks that asked for it, at most one every 30 s per job."""
    if not job.webhook or "progress" not in job.webhook_events:
        return
    claimed = job_store().progress_due(job.id, now, PROGRESS_EVERY)
    if claimed is not None and claimed.webhook:
        sequence = int(now.timestamp())  # one id per progress event, the same on its retries
        message = EventMessage(
            WebhookEvent.JOB_PROGRESS.value,
            "job",
            job.id,
            job.tenant_id,
            claimed.webhook,
            webhook_id(job.id, WebhookEvent.JOB_PROGRESS, sequence),
        )
        webhook_events().send(message)


def _line_output(
    planned: CachePlanLine | None,
    result: ResultLine | None,
    chunk_error: ErrorInfo | None,
    fresh: dict[str, CachedEmbedding],
) -> tuple[dict[str, Any] | None, ErrorInfo | None]:
    """A line's output (the cache's, the model's, or both merged in input order) or its error; the model's fresh
    vectors go into `fresh` for the write-back, under the keys planned at launch."""
    cached = planned.output if planned is not None else None
    if cached is not None and is_complete(cached):
        return cached, None  # answered whole by the cache: whatever happened to the rest of the chunk
    if chunk_error is not None:
        return None, chunk_error
    if result is None or result.output is None:
        return None, result.error if result is not None else None
    if planned is not None:
        fresh.update(fresh_entries(planned.sent_keys(), result.output))
    if cached is None:
        return result.output, None
    try:
        return merge(cached, result.output), None
    except ValueError as exc:
        return None, ErrorInfo.of("malformed_output", f"the model's output does not fit the line: {exc}")


def _read_cache_plan(job_id: str, chunk: int) -> dict[str, CachePlanLine]:
    """The chunk's cache plan by line id; empty when the chunk did not use the cache (or its plan is gone)."""
    plan: dict[str, CachePlanLine] = {}
    try:
        for raw in object_store().lines(job_files.chunk_cache_key(job_id, chunk), _MAX_CHUNK_BYTES):
            if raw.strip():
                try:
                    line = CachePlanLine.model_validate_json(raw)
                except ValidationError:
                    continue  # ours; a damaged line only costs its cached answers
                plan[line.id] = line
    except NotFoundError:
        pass
    return plan


def _assemble_if_ready(job_id: str, now: datetime) -> None:
    job = job_store().get(job_id)
    if job is not None and ready_to_assemble(job):
        assemble(job, now)


def _read_results(location: str) -> dict[str, ResultLine]:
    bucket, key = parse_s3_uri(location)
    results: dict[str, ResultLine] = {}
    objects = object_store()
    if bucket != objects.bucket:
        raise ValueError(f"a chunk output outside the data bucket: {location}")
    for raw in objects.lines(key, _MAX_LINE_BYTES):
        if not raw.strip():
            continue
        try:
            result = ResultLine.model_validate_json(raw)
        except ValidationError:
            continue  # a malformed line fails only its own input (missing_output)
        if result.id is not None:
            results[result.id] = result
    return results


def _chunk_lines(job_id: str, chunk: int) -> Iterator[BatchLine]:
    for raw in object_store().lines(job_files.chunk_key(job_id, chunk), _MAX_CHUNK_BYTES):
        if raw.strip():
            yield BatchLine.model_validate_json(raw)  # written by the planner: a bad one is a bug, not input


def _json_line(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _error_line(number: int, custom_id: str | None, error: ErrorInfo) -> bytes:
    return _json_line({"custom_id": custom_id, "line": number, "error": error.model_dump()})


# -- assembling -----------------------------------------------------------------------------------------------------


def settle(job_id: str, now: datetime | None = None) -> None:
    """After any change to a job: assemble it if nothing is left to run, then fill free places with chunks."""
    now = now or utc_now()
    _assemble_if_ready(job_id, now)
    launch(now)


def ready_to_assemble(job: Job) -> bool:
    """Planned, nothing in flight, and nothing more will be launched."""
    if job.status not in _FINAL_STATUS or not job.planned or job.running:
        return False
    return job.status is not JobStatus.IN_PROGRESS or not job.chunks_left


def assemble(job: Job, now: datetime) -> bool:
    """Stream the parts, in line order, into the output and error files; write the manifest last. Lines of chunks
    never launched (cancelled or expired) are failed with that reason, so completed + failed == total."""
    if not ready_to_assemble(job):
        return False
    during, final = _FINAL_STATUS[job.status]
    store = job_store()
    if not store.claim_assembly(job.id, job.status, during, now, now - ASSEMBLY_STALE):
        return False
    unlaunched_reason = {
        JobStatus.CANCELLING: ErrorInfo.of("cancelled", "the job was cancelled before this line ran"),
        JobStatus.EXPIRED: ErrorInfo.of("expired", "the job's completion window ended before this line ran"),
    }.get(job.status)
    objects = object_store()
    output_key = job_files.output_key(job.results_base)
    errors_key = job_files.errors_key(job.results_base)
    with objects.writer(output_key, "application/jsonl") as out:
        for chunk in sorted(job.done_chunks):
            for raw in objects.lines(job_files.part_key(job.id, chunk, "output"), _MAX_LINE_BYTES):
                if raw:
                    out.write(raw + b"\n")
        out.close()
    never_ran = _NeverRan()
    with objects.writer(errors_key, "application/jsonl") as errs:
        chunk_errors = _chunk_errors(job, unlaunched_reason, never_ran)
        for _, raw in heapq.merge(_validation_errors(job.id), chunk_errors, key=lambda pair: pair[0]):
            errs.write(raw + b"\n")
        errs.close()
    finished_at = utc_now()
    counts = {
        "total": job.total,
        "completed": job.completed,
        "failed": job.failed + never_ran.count,
    }
    manifest = {
        "job_id": job.id,
        "status": final.value,
        "request_counts": counts,
        "input": objects.uri(job.input_key),
        "output": objects.uri(output_key),
        "errors": objects.uri(errors_key),
        "completed_at": finished_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    objects.put(job_files.manifest_key(job.results_base), json.dumps(manifest, indent=2).encode(), "application/json")
    done = store.assembled(job.id, during, final, output_key, errors_key, never_ran.count, finished_at)
    if done:
        logger.info("job finished", job_id=job.id, status=final.value, request_counts=counts)
        metrics.add_metric(name=f"Jobs{final.value.capitalize()}", unit=MetricUnit.Count, value=1)
    return done


@dataclass
class _NeverRan:
    count: int = 0


def _validation_errors(job_id: str) -> Iterator[tuple[int, bytes]]:
    objects = object_store()
    key = job_files.validation_errors_key(job_id)
    if objects.size(key) is None:
        return
    for raw in objects.lines(key, _MAX_LINE_BYTES):
        if raw:
            yield json.loads(raw)["line"], raw


def _chunk_errors(job: Job, unlaunched: ErrorInfo | None, never_ran: _NeverRan) -> Iterator[tuple[int, bytes]]:
    """Chunks cover consecutive lines, so their errors in chunk order are in line order."""
    objects = object_store()
    for chunk in range(job.chunk_count):
        if chunk in job.done_chunks:
            for raw in objects.lines(job_files.part_key(job.id, chunk, "errors"), _MAX_LINE_BYTES):
                if raw:
                    yield json.loads(raw)["line"], raw
        elif unlaunched is not None:
            for line in _chunk_lines(job.id, chunk):
                number, custom_id = split_chunk_line_id(line.id)
                never_ran.count += 1
                yield number, _error_line(number, custom_id, unlaunched).rstrip(b"\n")


# -- the sweeper's part ---------------------------------------------------------------------------------------------


@dataclass
class JobSweep:
    expired: int = 0
    chunks_recovered: int = 0
    chunks_lost: int = 0
    assembled: int = 0
    launched: int = 0
    errors: list[str] = field(default_factory=list)


def sweep_jobs(now: datetime | None = None) -> JobSweep:
    """Expire jobs past their completion window, finish chunks whose notification was lost (from the output in
    S3, or as lost once nothing can still come), assemble what is ready, and fill free places."""
    settings = get_settings()
    now = now or utc_now()
    sweep = JobSweep()
    window = timedelta(hours=settings.job_completion_window_hours)
    overdue = timedelta(seconds=settings.invocation_timeout_seconds + settings.sweep_margin_seconds)
    lost_after = overdue + timedelta(seconds=settings.request_ttl_seconds)
    store = job_store()
    for job in [*store.active(limit=1000), *store.active(limit=1000, partition=WAITING_JOBS)]:
        try:
            if job.created_at + window < now and job.status in _EXPIRABLE:
                stopped = store.stop(
                    job.id, JobStatus.EXPIRED, [job.status], now, close=job.status is JobStatus.AWAITING_UPLOAD
                )
                sweep.expired += stopped is not None
                if stopped is not None:
                    job = stopped
            for chunk, started in sorted(job.running.items()):
                if now - started > overdue:
                    recovered = _recover_chunk(job, chunk, now, lost=now - started > lost_after)
                    sweep.chunks_recovered += recovered == "recovered"
                    sweep.chunks_lost += recovered == "lost"
            fresh = store.get(job.id)
            if fresh is not None and ready_to_assemble(fresh):
                sweep.assembled += assemble(fresh, now)
        except Exception as exc:  # one job's trouble never stops the sweep of the others
            logger.exception("job sweep failed", job_id=job.id)
            metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
            sweep.errors.append(f"{job.id}: {type(exc).__name__}")
    sweep.launched = launch(now)
    return sweep


_EXPIRABLE = {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING, JobStatus.IN_PROGRESS}


def _recover_chunk(job: Job, chunk: int, now: datetime, lost: bool) -> str:
    inference_id = chunk_inference_id(job.id, chunk)
    objects = object_store()
    output = objects.find(batch_output_key(inference_id))
    if output is not None:
        finish_chunk(job, chunk, output, None, now)
        return "recovered"
    failure = objects.find(batch_failure_prefix(inference_id))
    if failure is not None:
        reason = objects.read(failure, 64 * 1024).decode("utf-8", "replace")
        finish_chunk(job, chunk, None, ErrorInfo.of("inference_failed", reason), now)
        return "recovered"
    if lost:
        error = ErrorInfo.of("lost", "the endpoint never answered for this line's chunk")
        finish_chunk(job, chunk, None, error, now)
        return "lost"
    return "waiting"
