"""Finishing bulk chunks: a chunk's output (or its failure) -> its part files, the result cache's write-back and
the job's counters, exactly once however often a notification arrives.

Finishing never launches or assembles anything: it says what happened (`ChunkOutcome`), and the driver
(`job_driver`) decides what comes next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from inference_core.dal import job_files
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import batch_failure_prefix, batch_output_key, object_store, parse_s3_uri
from inference_core.dal.usage import usage_store
from inference_core.domain.batches import JOB_PREFIX, AsyncInferenceNotification, InvocationStatus, ResultLine
from inference_core.domain.documents import InvalidDocument
from inference_core.domain.inputs import estimated_tokens
from inference_core.domain.jobs import (
    Job,
    JobApi,
    error_line,
    output_line,
    progress_event,
    split_chunk_line_id,
)
from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.result_cache import CachedEmbedding, CachePlanLine, fresh_entries, is_complete, merge
from inference_core.domain.usage import usage_day
from inference_core.errors import DependencyError, NotFoundError
from inference_core.logic import outbox, usage
from inference_core.logic.predictions import encode_output
from inference_core.logic.result_cache import write_back
from inference_core.observability import MetricUnit, logger, metrics

PROGRESS_EVERY = timedelta(seconds=30)
# A chunk output holds at most a chunk's worth of lines; a line is at most this long.
MAX_LINE_BYTES = 64 * 1024 * 1024
_MAX_PLAN_BYTES = 512 * 1024 * 1024
_MISSING_OUTPUT = ErrorInfo.of("missing_output", "the model returned no result for this line")


def chunk_inference_id(job_id: str, chunk: int) -> str:
    return f"{job_id}-{chunk}"


def parse_chunk_inference_id(inference_id: str) -> tuple[str, int]:
    job_id, _, chunk = inference_id.rpartition("-")
    if not job_id.startswith(JOB_PREFIX) or not chunk.isdigit():
        raise ValueError(f"not a job chunk: {inference_id!r}")
    return job_id, int(chunk)


@dataclass
class ChunkOutcome:
    job_id: str
    chunk: int
    finished: bool = False  # this call moved the counters (False: finished before, or the job is unknown)
    completed: int = 0
    failed: int = 0
    tokens: int = 0
    texts: int = 0  # of the completed lines
    cached: int = 0  # of those texts, answered by the result cache


def complete_chunk(notification: AsyncInferenceNotification, now: datetime) -> ChunkOutcome:
    """A SageMaker notification for a job chunk -> its part files and the job's counters (exactly once)."""
    job_id, chunk = parse_chunk_inference_id(notification.inference_id)
    job = job_store().get(job_id)
    if job is None or chunk not in job.running:
        logger.info("job chunk already finished or unknown", job_id=job_id, chunk=chunk)
        return ChunkOutcome(job_id, chunk)  # a duplicate or late notification: nothing to do
    if notification.invocation_status is InvocationStatus.COMPLETED:
        location = notification.response_parameters.output_location
        if not location:
            raise ValueError("a Completed notification without responseParameters.outputLocation")
        return finish_chunk(job, chunk, location, None, now)
    reason = notification.failure_reason or "the model endpoint failed the chunk"
    return finish_chunk(job, chunk, None, ErrorInfo.of("inference_failed", reason), now)


class Recovery(StrEnum):
    RECOVERED = "recovered"  # finished from its output or failure object
    LOST = "lost"  # nothing can come any more: its lines failed as lost
    WAITING = "waiting"  # may still be in SageMaker's queue


def recover_chunk(job: Job, chunk: int, now: datetime, lost: bool) -> Recovery:
    """A chunk whose notification never came: finish it from what the endpoint left in S3, or, once nothing can
    come any more (`lost`), fail its lines."""
    inference_id = chunk_inference_id(job.id, chunk)
    objects = object_store()
    output = objects.find(batch_output_key(inference_id))
    if output is not None:
        finish_chunk(job, chunk, output, None, now)
        return Recovery.RECOVERED
    failure = objects.find(batch_failure_prefix(inference_id))
    if failure is not None:
        reason = objects.read(failure, 64 * 1024).decode("utf-8", "replace")
        finish_chunk(job, chunk, None, ErrorInfo.of("inference_failed", reason), now)
        return Recovery.RECOVERED
    if lost:
        finish_chunk(job, chunk, None, ErrorInfo.of("lost", "the endpoint never answered for this line's chunk"), now)
        return Recovery.LOST
    return Recovery.WAITING


def finish_chunk(
    job: Job, chunk: int, output_location: str | None, error: ErrorInfo | None, now: datetime
) -> ChunkOutcome:
    """Write the chunk's part files (from its output and the cache's answers, or every line the cache did not
    answer failed with `error`), write the fresh vectors back, then move the counters and give the chunk's place
    under the gate back."""
    outcome = ChunkOutcome(job.id, chunk)
    results = _read_results(output_location) if output_location else {}
    plan = _read_cache_plan(job.id, chunk)
    fresh: dict[str, CachedEmbedding] = {}
    objects = object_store()
    with (
        objects.writer(job_files.part_key(job.id, chunk, "output"), "application/jsonl") as out,
        objects.writer(job_files.part_key(job.id, chunk, "errors"), "application/jsonl") as errs,
    ):
        for line in job_files.chunk_lines(job.id, chunk):
            number, custom_id = split_chunk_line_id(line.id)
            raw_output, line_error = _line_output(plan.get(line.id), results.get(line.id), error, fresh)
            if raw_output is None:
                errs.write(error_line(number, custom_id, line_error or _MISSING_OUTPUT))
                outcome.failed += 1
                continue
            output = encode_output(raw_output, str(line.parameters.get("encoding_format", "float")))
            tokens = sum(estimated_tokens(text) for text in line.inputs)
            if job.api is JobApi.OPENAI:
                output = {**output, "prompt_tokens": tokens}  # the batch's result line reports its usage
            out.write(output_line(number, custom_id, output))
            outcome.completed += 1
            outcome.tokens += tokens
            outcome.texts += len(line.inputs)
            outcome.cached += _cached_texts(plan.get(line.id), len(line.inputs))
        out.close()
        errs.close()
    write_back(fresh, now, at_once=True)  # the chunks launched next look these up
    used = usage.chunk_usage(outcome.completed, outcome.texts, outcome.tokens, outcome.cached)
    counted = usage_store().update(job.tenant_id, usage_day(now), used)  # with the counters: exactly once
    outcome.finished = job_store().finish_chunk(
        job.id, chunk, outcome.completed, outcome.failed, outcome.tokens, also=[counted]
    )
    if outcome.finished:
        metrics.add_metric(name="JobLinesCompleted", unit=MetricUnit.Count, value=outcome.completed)
        metrics.add_metric(name="JobLinesFailed", unit=MetricUnit.Count, value=outcome.failed)
        logger.info(
            "job chunk finished", job_id=job.id, chunk=chunk, completed=outcome.completed, failed=outcome.failed
        )
        _report_progress(job, now)
    return outcome


def _cached_texts(planned: CachePlanLine | None, texts: int) -> int:
    if planned is None:
        return 0
    return texts if planned.output is not None and is_complete(planned.output) else texts - len(planned.sent_keys())


def _report_progress(job: Job, now: datetime) -> None:
    """`job.progress` for webhooks that asked for it, at most one every 30 s per job. Kept on the record with the
    write that claims it, so a failure here only delays it to the next sweep: it never holds up the job."""
    event = progress_event(job, now)
    if event is None:
        return
    try:
        claimed = job_store().progress_due(job.id, now, PROGRESS_EVERY, event)
    except DependencyError:
        logger.warning("job progress event not claimed", job_id=job.id)
        return
    outbox.flush([claimed] if claimed else [])


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
        for raw in object_store().lines(job_files.chunk_cache_key(job_id, chunk), _MAX_PLAN_BYTES):
            if raw.strip():
                try:
                    line = CachePlanLine.from_json(raw)
                except InvalidDocument:
                    continue  # ours; a damaged line only costs its cached answers
                plan[line.id] = line
    except NotFoundError:
        pass
    return plan


def _read_results(location: str) -> dict[str, ResultLine]:
    bucket, key = parse_s3_uri(location)
    results: dict[str, ResultLine] = {}
    objects = object_store()
    if bucket != objects.bucket:
        raise ValueError(f"a chunk output outside the data bucket: {location}")
    for raw in objects.lines(key, MAX_LINE_BYTES):
        if not raw.strip():
            continue
        try:
            result = ResultLine.from_json(raw)
        except InvalidDocument:
            continue  # a malformed line fails only its own input (missing_output)
        if result.id is not None:
            results[result.id] = result
    return results
