"""/v1/jobs: bulk jobs over a JSONL file; every route is scoped to the caller's tenant."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel

from inference_api.auth import Tenant
from inference_api.openapi import replies
from inference_api.routes.predictions import IDEMPOTENCY_KEY
from inference_api.schemas import ErrorResponse, JobCreate
from inference_api.strict_json import StrictJsonRoute
from inference_api.webhook_deliveries import Redelivery, WebhookDeliveryList, delivery_list, redelivery
from inference_core.domain.jobs import Job
from inference_core.errors import NotFoundError, ValidationFailedError
from inference_core.logic import jobs
from inference_core.logic.job_views import JobOut, job_view
from inference_core.observability import MetricUnit, logger, metrics

router = APIRouter(
    prefix="/v1/jobs",
    route_class=StrictJsonRoute,
    tags=["jobs"],
    responses=replies(ErrorResponse, 400, 401, 429, 404, 422),
)
_JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")


def _checked_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise NotFoundError("job not found", {"id": job_id[:64]})
    logger.set_correlation_id(job_id)
    return job_id


class JobList(BaseModel):
    data: list[JobOut]
    next_cursor: str | None


def present(job: Job, upload: jobs.UploadLink | None = None) -> JobOut:
    return job_view(job, upload)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="1-255 printable ASCII characters. The same key and request return the same job.",
        json_schema_extra={"pattern": IDEMPOTENCY_KEY.pattern, "minLength": 1, "maxLength": 255},
    ),
]


def _checked_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise ValidationFailedError("Idempotency-Key must be 1-255 printable ASCII characters")
    return idempotency_key


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    responses={**replies(JobOut, 200), **replies(ErrorResponse, 409, 413)},
)
def create_job(
    tenant: Tenant,
    response: Response,
    body: Annotated[JobCreate | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Create a job and get a presigned PUT for its JSONL file; the upload starts the job. A retry with the same
    Idempotency-Key answers the same job (200, `Idempotent-Replayed: true`) with a fresh upload link."""
    request = body or JobCreate()
    key = _checked_key(idempotency_key)
    job, upload, created = jobs.create(
        tenant,
        request.metadata or {},
        request.webhook,
        request.dry_run,
        key,
        webhook_events=list(request.webhook_events_filter or ["completed"]),
    )
    logger.set_correlation_id(job.id)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return present(job, upload)


@router.get("", response_model=JobList)
def list_jobs(
    tenant: Tenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=2048,
            description="`next_cursor` of the previous page.",
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
        ),
    ] = None,
) -> JobList:
    """The caller's jobs, newest first."""
    page = jobs.list_for_tenant(tenant, limit, cursor)
    return JobList(data=[present(job) for job in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, tenant: Tenant) -> JobOut:
    """The job; while it waits for its file, with a fresh `upload` link."""
    job = jobs.get(tenant, _checked_id(job_id))
    return present(job, jobs.upload_link(job))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=replies(ErrorResponse, 409))
def cancel_job(job_id: str, tenant: Tenant) -> JobOut:
    """Stop launching chunks at once; what finished is kept and downloadable once the job is `cancelled`."""
    job = jobs.cancel(tenant, _checked_id(job_id))
    metrics.add_metric(name="JobsCancelled", unit=MetricUnit.Count, value=1)
    return present(job)


@router.post(
    "/{job_id}/retry",
    status_code=201,
    response_model=JobOut,
    responses={**replies(JobOut, 200), **replies(ErrorResponse, 409)},
)
def retry_job(job_id: str, tenant: Tenant, response: Response, idempotency_key: IdempotencyKey = None) -> JobOut:
    """A new job of only the failed lines (`parent_id` set), once this one has finished. The same
    Idempotency-Key returns the same child job (200, `Idempotent-Replayed: true`)."""
    child, created = jobs.retry(tenant, _checked_id(job_id), _checked_key(idempotency_key))
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return present(child)


@router.get("/{job_id}/webhook_deliveries", response_model=WebhookDeliveryList, response_model_exclude_none=True)
def list_webhook_deliveries(job_id: str, tenant: Tenant) -> WebhookDeliveryList:
    """Every delivery attempt of this object's webhook events, oldest first."""
    found = jobs.get(tenant, _checked_id(job_id))
    return delivery_list(found.id)


@router.post(
    "/{job_id}/webhook_deliveries/redeliver",
    status_code=202,
    response_model=Redelivery,
    responses=replies(ErrorResponse, 409),
)
def redeliver_webhook(job_id: str, tenant: Tenant) -> Redelivery:
    """Send the last event again (same `webhook-id`: receivers that already have it can drop it)."""
    found = jobs.get(tenant, _checked_id(job_id))
    return redelivery(found.id)
