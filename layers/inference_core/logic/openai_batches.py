"""OpenAI batches: a bulk job over a file of /v1/files (`JobApi.OPENAI`), so it runs as every job does (chunks
under the gate, counters, the result cache, expiry, cancel, webhooks), and is shown as OpenAI's Batch object.

The batch id is the job's (`batch_<hex>` for `job_<hex>`); its output and error files are registered as files
when it is assembled, under ids derived from the job."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from inference_core.dal import job_files
from inference_core.dal.http import BlockedUrl
from inference_core.dal.jobs import job_store
from inference_core.dal.queue import job_commands
from inference_core.domain.clock import utc_now
from inference_core.domain.files import FilePurpose
from inference_core.domain.jobs import Job, JobApi, JobSource, JobStatus
from inference_core.domain.openai_dialect import (
    BATCH_ENDPOINT,
    COMPLETION_WINDOW,
    MODEL_ID,
    batch_id,
    job_id_of,
    result_file_id,
)
from inference_core.errors import DependencyError, NotFoundError, ValidationFailedError
from inference_core.logic import jobs, openai_files, webhooks
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

MAX_LIST = 100

BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


class BatchErrorOut(BaseModel):
    code: str | None
    line: int | None
    message: str | None
    param: str | None


class BatchErrorsOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchErrorOut]


class RequestCountsOut(BaseModel):
    total: int
    completed: int
    failed: int


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class BatchUsageOut(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class BatchOut(BaseModel):
    """OpenAI's Batch object."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrorsOut | None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCountsOut
    metadata: dict[str, str] | None
    model: str | None
    usage: BatchUsageOut


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


def create(
    tenant_id: str,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    webhook: str | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Job:
    """A batch over an uploaded file: validated and cut into chunks by the jobs function, as any job's file."""
    if endpoint != BATCH_ENDPOINT:
        raise ValidationFailedError(
            f"endpoint must be {BATCH_ENDPOINT} (the only one this API runs), not {endpoint[:100]!r}",
            {"param": "endpoint"},
        )
    if completion_window != COMPLETION_WINDOW:
        raise ValidationFailedError(f"completion_window must be {COMPLETION_WINDOW!r}", {"param": "completion_window"})
    if webhook is not None:
        try:
            webhooks.check_url(webhook)
        except BlockedUrl as exc:
            raise ValidationFailedError(f"webhook: {exc}", {"param": "webhook"}) from exc
    digest = jobs.fingerprint("batch", input_file_id, endpoint, completion_window, metadata, webhook)
    replayed = jobs.replay(tenant_id, idempotency_key, digest)
    if replayed is not None:
        return replayed
    try:
        source = openai_files.get(tenant_id, input_file_id)
    except NotFoundError as exc:
        raise NotFoundError(f"No such File object: {input_file_id[:64]}", {"param": "input_file_id"}) from exc
    if source.purpose is not FilePurpose.BATCH:
        raise ValidationFailedError(
            f"the file's purpose is {source.purpose.value}; a batch runs a file uploaded with purpose 'batch'",
            {"param": "input_file_id"},
        )
    job_id = f"job_{uuid.uuid4().hex}"
    job = Job(
        id=job_id,
        tenant_id=tenant_id,
        status=JobStatus.VALIDATING,
        created_at=now or utc_now(),
        source=JobSource.FILE,
        input_key=source.object_key,
        results_base=job_files.api_results_base(job_id),
        metadata=metadata or {},
        webhook=webhook,
        api=JobApi.OPENAI,
        input_file_id=source.id,
    )
    earlier = jobs.create_once(job, idempotency_key, digest)
    if earlier is not None:
        return earlier
    try:
        job_commands().send("validate", job_id)
    except DependencyError:  # the batch exists: the sweeper sends the command again
        logger.warning("batch validation not queued", job_id=job_id)
    logger.info("batch created", job_id=job_id, input_file_id=source.id)
    metrics.add_metric(name="BatchesCreated", unit=MetricUnit.Count, value=1)
    return job


def get(tenant_id: str, batch: str) -> Job:
    job_id = job_id_of(batch)
    if job_id is None:
        raise NotFoundError(f"No such Batch object: {batch[:64]}", {"param": "batch_id"})
    try:
        return jobs.get(tenant_id, job_id, JobApi.OPENAI)
    except NotFoundError as exc:
        raise NotFoundError(f"No such Batch object: {batch[:64]}", {"param": "batch_id"}) from exc


def cancel(tenant_id: str, batch: str) -> Job:
    job = get(tenant_id, batch)
    return jobs.cancel(tenant_id, job.id, api=JobApi.OPENAI)


def list_for_tenant(tenant_id: str, limit: int, after: str | None) -> BatchList:
    """Newest first, as OpenAI lists them; `after` is the last batch id of the previous page."""
    cursor = None
    if after is not None:
        try:
            cursor = job_store().cursor_after(get(tenant_id, after))
        except NotFoundError as exc:
            raise ValidationFailedError(f"after: no such batch {after[:64]!r}", {"param": "after"}) from exc
    page = jobs.list_for_tenant(tenant_id, limit + 1, cursor, JobApi.OPENAI)
    shown = [view(job) for job in page.items[:limit]]
    return BatchList(
        data=shown,
        first_id=shown[0].id if shown else None,
        last_id=shown[-1].id if shown else None,
        has_more=len(page.items) > limit,
    )


_STATUS: dict[JobStatus, BatchStatus] = {
    JobStatus.AWAITING_UPLOAD: "validating",
    JobStatus.VALIDATING: "validating",
    JobStatus.VALIDATED: "completed",
    JobStatus.IN_PROGRESS: "in_progress",
    JobStatus.FINALIZING: "finalizing",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLING: "cancelling",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "expired",
}


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def view(job: Job) -> BatchOut:
    status = job.status
    finished = job.completed_at
    window = timedelta(hours=get_settings().job_completion_window_hours)
    was_cancelled = status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
    errors = None
    if status is JobStatus.FAILED and job.error is not None:
        errors = BatchErrorsOut(
            data=[BatchErrorOut(code=job.error.code, line=None, message=job.error.message, param=None)]
        )
    assembled = job.output_key is not None
    return BatchOut(
        id=batch_id(job.id),
        endpoint=BATCH_ENDPOINT,
        errors=errors,
        input_file_id=job.input_file_id or "",
        completion_window=COMPLETION_WINDOW,
        status=_STATUS[status],
        output_file_id=result_file_id(job.id, "output") if assembled and job.completed else None,
        error_file_id=result_file_id(job.id, "errors") if assembled and job.failed else None,
        created_at=int(job.created_at.timestamp()),
        in_progress_at=_unix(job.started_at) if job.planned and status is not JobStatus.FAILED else None,
        expires_at=_unix(job.created_at + window),
        finalizing_at=_unix(job.finalizing_at),
        completed_at=_unix(finished) if status is JobStatus.COMPLETED else None,
        failed_at=_unix(finished) if status is JobStatus.FAILED else None,
        expired_at=_unix(job.stopped_at) if status is JobStatus.EXPIRED else None,
        cancelling_at=_unix(job.stopped_at) if was_cancelled else None,
        cancelled_at=_unix(finished) if status is JobStatus.CANCELLED else None,
        request_counts=RequestCountsOut(total=job.total, completed=job.completed, failed=job.failed),
        metadata=job.metadata or None,
        model=MODEL_ID,
        usage=BatchUsageOut(
            input_tokens=job.tokens,
            input_tokens_details=InputTokensDetails(),
            output_tokens_details=OutputTokensDetails(),
            total_tokens=job.tokens,
        ),
    )
