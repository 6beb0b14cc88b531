"""Assembling a job: once nothing runs and nothing more will be launched, stream the part files (in line order)
into the output and error files, write the manifest last, and finish the job."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from inference_core.dal import job_files
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import object_store
from inference_core.domain.clock import format_timestamp, utc_now
from inference_core.domain.jobs import (
    ASSEMBLED,
    Job,
    JobApi,
    JobStatus,
    completion_event,
    error_line,
    line_number,
    split_chunk_line_id,
)
from inference_core.domain.openai_dialect import batch_id, result_line
from inference_core.domain.predictions import ErrorInfo
from inference_core.logic import outbox
from inference_core.logic.job_chunks import MAX_LINE_BYTES
from inference_core.logic.openai_files import register_result_file
from inference_core.observability import MetricUnit, logger, metrics

# Someone assembling for longer than this is taken to have died (a Lambda stops at 15 minutes).
ASSEMBLY_STALE = timedelta(minutes=16)
_NEVER_RAN = {
    JobStatus.CANCELLING: ErrorInfo.of("cancelled", "the job was cancelled before this line ran"),
    JobStatus.EXPIRED: ErrorInfo.of("expired", "the job's completion window ended before this line ran"),
}


def assemble_if_ready(job_id: str, now: datetime) -> bool:
    job = job_store().get(job_id)
    return job is not None and assemble(job, now)


def assemble(job: Job, now: datetime) -> bool:
    """Stream the parts, in line order, into the output and error files; write the manifest last. Lines of chunks
    never launched (cancelled or expired) are failed with that reason, so completed + failed == total."""
    if not job.ready_to_assemble:
        return False
    store = job_store()
    claimed = store.claim_assembly(job, now, now - ASSEMBLY_STALE)
    if claimed is None:
        return False
    objects = object_store()
    output_key = job_files.output_key(claimed.results_base)
    errors_key = job_files.errors_key(claimed.results_base)
    final_line = _final_line(claimed)
    with objects.writer(output_key, "application/jsonl") as out:
        for chunk in sorted(claimed.done_chunks):
            for raw in objects.lines(job_files.part_key(claimed.id, chunk, "output"), MAX_LINE_BYTES):
                if raw:
                    out.write(final_line(raw))
        out.close()
    never_ran = _NeverRan()
    with objects.writer(errors_key, "application/jsonl") as errs:
        chunk_errors = _chunk_errors(claimed, _NEVER_RAN.get(claimed.status), never_ran)
        for _, raw in heapq.merge(_validation_errors(claimed.id), chunk_errors, key=lambda pair: pair[0]):
            errs.write(final_line(raw))
        errs.close()
    finished_at = utc_now()
    final = ASSEMBLED[claimed.status]
    if claimed.api is JobApi.OPENAI:  # the result files are files of /v1/files before the batch says it is done
        name = batch_id(claimed.id)
        for kind, written in (("output", output_key), ("errors", errors_key)):
            register_result_file(claimed.tenant_id, claimed.id, kind, written, f"{name}_{kind}.jsonl", finished_at)
    counts = {"total": claimed.total, "completed": claimed.completed, "failed": claimed.failed + never_ran.count}
    manifest = {
        "job_id": claimed.id,
        "status": final.value,
        "request_counts": counts,
        "input": objects.uri(claimed.input_key),
        "output": objects.uri(output_key),
        "errors": objects.uri(errors_key),
        "completed_at": format_timestamp(finished_at),
    }
    objects.put(
        job_files.manifest_key(claimed.results_base), json.dumps(manifest, indent=2).encode(), "application/json"
    )
    done = store.assembled(claimed, output_key, errors_key, never_ran.count, finished_at, completion_event(job, final))
    if done is None:
        return False
    outbox.flush([done])
    logger.info("job finished", job_id=job.id, status=final.value, request_counts=counts)
    metrics.add_metric(name=f"Jobs{final.value.capitalize()}", unit=MetricUnit.Count, value=1)
    return True


def _final_line(job: Job) -> Callable[[bytes], bytes]:
    """A line of the job's own format (from a part or the validation) -> a line of its result file."""
    if job.api is JobApi.OPENAI:
        return lambda raw: result_line(job.id, json.loads(raw))
    return lambda raw: raw + b"\n"


@dataclass
class _NeverRan:
    count: int = 0


def _validation_errors(job_id: str) -> Iterator[tuple[int, bytes]]:
    objects = object_store()
    key = job_files.validation_errors_key(job_id)
    if objects.size(key) is None:
        return
    for raw in objects.lines(key, MAX_LINE_BYTES):
        if raw:
            yield line_number(raw), raw


def _chunk_errors(job: Job, unlaunched: ErrorInfo | None, never_ran: _NeverRan) -> Iterator[tuple[int, bytes]]:
    """Chunks cover consecutive lines, so their errors in chunk order are in line order."""
    objects = object_store()
    for chunk in range(job.chunk_count):
        if chunk in job.done_chunks:
            for raw in objects.lines(job_files.part_key(job.id, chunk, "errors"), MAX_LINE_BYTES):
                if raw:
                    yield line_number(raw), raw
        elif unlaunched is not None:
            for line in job_files.chunk_lines(job.id, chunk):
                number, custom_id = split_chunk_line_id(line.id)
                never_ran.count += 1
                yield number, error_line(number, custom_id, unlaunched).rstrip(b"\n")
