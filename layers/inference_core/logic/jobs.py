"""What the API does with jobs: create one with its upload link, read, list, cancel, retry the failed lines."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from inference_core.dal import job_files
from inference_core.dal.idempotency import IdempotencyClaim, IdempotencyKeyTaken, idempotency_store
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import object_store
from inference_core.dal.queue import job_commands
from inference_core.dal.table import InvalidCursor
from inference_core.domain.clock import utc_now
from inference_core.domain.jobs import (
    CANCELLABLE,
    Job,
    JobApi,
    JobSource,
    JobStatus,
    closes_at_once,
    completion_event,
)
from inference_core.errors import IdempotencyConflictError, InvalidStateError, NotFoundError, ValidationFailedError
from inference_core.logic import limits, outbox
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

UPLOAD_CONTENT_TYPE = "application/jsonl"


@dataclass(frozen=True)
class UploadLink:
    url: str
    headers: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class Progress:
    fraction: float
    items_per_second: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


def create(
    tenant_id: str,
    metadata: dict[str, str],
    webhook: str | None,
    dry_run: bool,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    webhook_events: list[str] | None = None,
) -> tuple[Job, UploadLink, bool]:
    """A job waiting for its file, and a presigned PUT for exactly that file's key. With an Idempotency-Key, a
    retried request answers the job the first one made (with a fresh link); `created` says which."""
    now = now or utc_now()
    events = sorted(set(webhook_events or ["completed"]))
    digest = fingerprint("create", metadata, webhook, dry_run, events)
    if idempotency_key:
        replay = _replay(tenant_id, idempotency_key, digest)
        if replay is not None:
            return replay, _upload_link(replay, now), False
    job_id = f"job_{uuid.uuid4().hex}"
    job = Job(
        id=job_id,
        tenant_id=tenant_id,
        status=JobStatus.AWAITING_UPLOAD,
        created_at=now,
        source=JobSource.API,
        input_key=job_files.upload_key(tenant_id, job_id),
        results_base=job_files.api_results_base(job_id),
        dry_run=dry_run,
        metadata=metadata,
        webhook=webhook,
        webhook_events=events,
    )
    replay = _create(job, tenant_id, idempotency_key, digest)
    if replay is not None:
        return replay, _upload_link(replay, now), False
    logger.info("job created", job_id=job_id, dry_run=dry_run)
    metrics.add_metric(name="JobsCreated", unit=MetricUnit.Count, value=1)
    return job, _upload_link(job, now), True


def upload_link(job: Job) -> UploadLink | None:
    """A fresh upload link while the job waits for its file (the first may have expired, or the upload died)."""
    return _upload_link(job, utc_now()) if job.status is JobStatus.AWAITING_UPLOAD else None


def _upload_link(job: Job, now: datetime) -> UploadLink:
    seconds = get_settings().job_upload_url_seconds
    url = object_store().presigned_put(job.input_key, UPLOAD_CONTENT_TYPE, seconds)
    return UploadLink(url, {"Content-Type": UPLOAD_CONTENT_TYPE}, now + timedelta(seconds=seconds))


def replay(tenant_id: str, key: str | None, fingerprint: str) -> Job | None:
    """The job an earlier request with this Idempotency-Key made (IdempotencyConflictError for another request)."""
    return _replay(tenant_id, key, fingerprint) if key else None


def create_once(job: Job, key: str | None, fingerprint: str) -> Job | None:
    """Write the job, claiming the key with it; the job of an earlier request when that one won the key."""
    return _create(job, job.tenant_id, key, fingerprint)


def _idempotency_scope(key: str) -> str:
    # Client keys are printable ASCII without spaces, so this scope never meets a prediction's key.
    return f"jobs {key}"


def fingerprint(operation: str, *parts: object) -> str:
    canonical = json.dumps([operation, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(tenant_id: str, key: str, fingerprint: str) -> Job | None:
    claimed = idempotency_store().find(tenant_id, _idempotency_scope(key))
    if claimed is None:
        return None
    if claimed.body_hash != fingerprint:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used with a different request", {"job_id": claimed.prediction_id}
        )
    return job_store().get(claimed.prediction_id)


def _create(job: Job, tenant_id: str, key: str | None, fingerprint: str) -> Job | None:
    """Write the job (claiming the key with it); the job of an earlier request when that one won the key."""
    claim = IdempotencyClaim(tenant_id, _idempotency_scope(key), fingerprint) if key else None
    try:
        limits.create_job(job, claim)
    except IdempotencyKeyTaken:
        return _replay(tenant_id, key or "", fingerprint)
    return None


def get(tenant_id: str, job_id: str, api: JobApi = JobApi.NATIVE) -> Job:
    """A job of this tenant and API; another tenant's (or an OpenAI batch on /v1/jobs) answers like an unknown one."""
    job = job_store().get(job_id) if job_id.startswith("job_") else None
    if job is None or job.tenant_id != tenant_id or job.api is not api:
        raise NotFoundError("job not found", {"id": job_id})
    return job


def list_for_tenant(tenant_id: str, limit: int, cursor: str | None, api: JobApi = JobApi.NATIVE) -> JobPage:
    try:
        items, next_cursor = job_store().list_for_tenant(tenant_id, limit, cursor, api)
    except InvalidCursor as exc:
        raise ValidationFailedError("invalid cursor", {"field": "cursor"}) from exc
    return JobPage(items, next_cursor)


def cancel(tenant_id: str, job_id: str, now: datetime | None = None, api: JobApi = JobApi.NATIVE) -> Job:
    """Stops launching chunks at once. Chunks already at the endpoint finish and are kept; the job is then
    assembled (`cancelling` -> `cancelled`) with the lines that never ran in its error file."""
    job = get(tenant_id, job_id, api)
    if job.status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
        return job  # cancelling twice is not an error
    if job.status not in CANCELLABLE:
        raise InvalidStateError(f"a {job.status.value} job cannot be cancelled", {"id": job_id, "status": job.status})
    ends_now = closes_at_once(job.status)
    event = completion_event(job, JobStatus.CANCELLED) if ends_now else None
    stopped = job_store().cancel(job, now or utc_now(), event)
    if stopped is None:
        return cancel(tenant_id, job_id, now, api)  # it moved meanwhile: decide again on its new status
    outbox.flush([stopped])
    if not ends_now:
        job_commands().send("settle", job_id)  # assemble now if nothing is in flight (not inside this request)
    logger.info("job cancelled", job_id=job_id, was=job.status.value)
    return stopped


_RETRYABLE = (JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.EXPIRED)


def retry(
    tenant_id: str, job_id: str, idempotency_key: str | None = None, now: datetime | None = None
) -> tuple[Job, bool]:
    """A child job of only the lines that failed (or never ran). Its input file is built from the parent's input
    and error file by the jobs function; the child keeps the parent's custom_ids."""
    digest = fingerprint("retry", job_id)
    if idempotency_key:
        replay = _replay(tenant_id, idempotency_key, digest)
        if replay is not None:
            return replay, False
    parent = get(tenant_id, job_id)
    if parent.status not in _RETRYABLE or parent.error_key is None:
        raise InvalidStateError(
            f"a {parent.status.value} job has no failed lines to retry yet", {"id": job_id, "status": parent.status}
        )
    if parent.failed == 0:
        raise InvalidStateError("the job has no failed lines", {"id": job_id, "failed": 0})
    child_id = f"job_{uuid.uuid4().hex}"
    child = Job(
        id=child_id,
        tenant_id=tenant_id,
        status=JobStatus.VALIDATING,
        created_at=now or utc_now(),
        source=JobSource.RETRY,
        input_key=job_files.retry_input_key(child_id),
        results_base=job_files.api_results_base(child_id),
        metadata=parent.metadata,
        webhook=parent.webhook,
        webhook_events=parent.webhook_events,
        parent_id=parent.id,
    )
    replay = _create(child, tenant_id, idempotency_key, digest)
    if replay is not None:
        return replay, False
    job_commands().send("build_retry", child_id)
    logger.info("job retry created", job_id=child_id, parent_id=parent.id, lines=parent.failed)
    return child, True


def progress(job: Job, now: datetime | None = None) -> Progress:
    """How far the job is, from its counters (they move chunk by chunk)."""
    if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED, JobStatus.EXPIRED) and job.completed_at:
        fraction = 1.0
    else:
        fraction = job.processed / job.total if job.total else 0.0
    # The rate counts only lines that went through the model: invalid lines are refused all at once at the start.
    ran = job.processed - job.invalid
    if job.started_at is None or ran <= 0:
        return Progress(round(fraction, 4), None, 0.0 if job.status.is_terminal else None)
    end = job.completed_at or now or utc_now()
    elapsed = max((end - job.started_at).total_seconds(), 1e-3)
    rate = ran / elapsed
    remaining = max(job.total - job.processed, 0)
    eta = 0.0 if job.status.is_terminal else round(remaining / rate, 1)
    return Progress(round(fraction, 4), round(rate, 2), eta)


def result_urls(job: Job) -> tuple[str | None, str | None]:
    """Short-lived links to the output and error files, once they exist. A dry run's error file lists the lines
    that would be refused."""
    objects = object_store()
    seconds = get_settings().presigned_url_seconds
    output = objects.presigned_get(objects.uri(job.output_key), seconds) if job.output_key else None
    errors_key = job.error_key
    if errors_key is None and job.status is JobStatus.VALIDATED and job.failed:
        errors_key = job_files.validation_errors_key(job.id)
    errors = objects.presigned_get(objects.uri(errors_key), seconds) if errors_key else None
    return output, errors
