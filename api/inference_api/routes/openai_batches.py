"""/v1/batches in OpenAI's shapes: a batch runs an uploaded file as a bulk job (chunks, gate, cache, counters,
webhooks), and its output and error files are files of /v1/files. Batches of other tenants are 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from inference_api.auth import Tenant
from inference_api.routes.jobs import IdempotencyKey, _checked_key
from inference_api.routes.openai_compat import OPENAI_ERRORS
from inference_api.strict_json import StrictJsonRoute
from inference_core.domain import openai_dialect as dialect
from inference_core.logic import openai_batches
from inference_core.logic.openai_batches import BatchList, BatchOut
from inference_core.observability import logger

router = APIRouter(
    prefix="/v1/batches", route_class=StrictJsonRoute, tags=["openai-compatible"], responses=OPENAI_ERRORS
)


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: StrictStr = Field(max_length=64, description="A file uploaded with purpose `batch`.")
    endpoint: StrictStr = Field(max_length=200, description=f"`{dialect.BATCH_ENDPOINT}`.")
    completion_window: StrictStr = Field(max_length=20, description=f"`{dialect.COMPLETION_WINDOW}`.")
    metadata: dict[StrictStr, StrictStr] | None = Field(
        default=None,
        description=f"At most {dialect.MAX_METADATA_PAIRS} pairs; keys up to {dialect.MAX_METADATA_KEY_CHARS} "
        f"characters, values up to {dialect.MAX_METADATA_VALUE_CHARS}.",
    )
    webhook: StrictStr | None = Field(
        default=None,
        max_length=2048,
        description="Not OpenAI's (send it with `extra_body`): an HTTPS URL that gets `batch.completed`, "
        "`batch.failed`, `batch.expired` or `batch.cancelled`, signed with the tenant's `whsec_` secret.",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > dialect.MAX_METADATA_PAIRS:
            raise ValueError(f"at most {dialect.MAX_METADATA_PAIRS} pairs")
        for key, item in value.items():
            if not 1 <= len(key) <= dialect.MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys hold 1 to {dialect.MAX_METADATA_KEY_CHARS} characters")
            if len(item) > dialect.MAX_METADATA_VALUE_CHARS:
                raise ValueError(f"values hold at most {dialect.MAX_METADATA_VALUE_CHARS} characters")
        return value


@router.post("", response_model=BatchOut)
def create_batch(
    tenant: Tenant, body: Annotated[BatchCreate, Body()], idempotency_key: IdempotencyKey = None
) -> BatchOut:
    """Starts `validating`; each line's body is checked as the batch runs, and a line that fails goes to the error
    file alone. The same Idempotency-Key (optional) answers the same batch."""
    job = openai_batches.create(
        tenant,
        body.input_file_id,
        body.endpoint,
        body.completion_window,
        body.metadata,
        body.webhook,
        _checked_key(idempotency_key),
    )
    logger.set_correlation_id(job.id)
    return openai_batches.view(job)


@router.get("", response_model=BatchList)
def list_batches(
    tenant: Tenant,
    after: Annotated[str | None, Query(max_length=64, description="The last batch id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=openai_batches.MAX_LIST)] = 20,
) -> BatchList:
    """Newest first."""
    return openai_batches.list_for_tenant(tenant, limit, after)


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(batch_id: str, tenant: Tenant) -> BatchOut:
    return openai_batches.view(openai_batches.get(tenant, batch_id))


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel_batch(batch_id: str, tenant: Tenant) -> BatchOut:
    """`cancelling` until the chunks at the endpoint are back, then `cancelled` with what finished in the output
    file and the lines that never ran in the error file. A finished batch cannot be cancelled (409)."""
    return openai_batches.view(openai_batches.cancel(tenant, batch_id))
