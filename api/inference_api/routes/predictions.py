"""/v1/predictions: submit, read, list and cancel; every route is scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from inference_api.auth import CountingTenant, Tenant, admit_async
from inference_api.openapi import replies
from inference_api.schemas import (
    MAX_WAIT_SECONDS,
    ErrorResponse,
    PredictionCreate,
    PredictionList,
    PredictionOut,
)
from inference_api.strict_json import MAX_BODY_BYTES, StrictJsonRoute
from inference_api.webhook_deliveries import Redelivery, WebhookDeliveryList, delivery_list, redelivery
from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.errors import NotFoundError, PayloadTooLargeError, ValidationFailedError
from inference_core.logic import predictions
from inference_core.logic.views import prediction_view
from inference_core.observability import MetricUnit, logger, metrics

router = APIRouter(
    prefix="/v1/predictions",
    route_class=StrictJsonRoute,
    tags=["predictions"],
    responses=replies(ErrorResponse, 400, 401, 429, 404, 422),
)
_PREDICTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*([0-9]+)", re.IGNORECASE)
_CACHE_BYPASS = re.compile(r"(?:^|[,\s])no-(?:store|cache)(?:$|[,\s=])", re.IGNORECASE)


def _present(prediction: Prediction) -> PredictionOut:
    return prediction_view(prediction)


def _summary(prediction: Prediction) -> PredictionOut:
    """Lists leave outputs out (they can be hundreds of KB each): read one prediction for its output."""
    return PredictionOut.from_domain(prediction)


def _checked_id(prediction_id: str) -> str:
    if not _PREDICTION_ID.match(prediction_id):
        raise NotFoundError("prediction not found", {"id": prediction_id[:64]})
    logger.set_correlation_id(prediction_id)
    return prediction_id


def _wait_seconds(prefer: str | None) -> int:
    """`Prefer: wait=N`, clamped to MAX_WAIT_SECONDS (a preference, so any larger number just means the most)."""
    match = _PREFER_WAIT.search(prefer or "")
    if not match:
        return 0
    digits = match.group(1).lstrip("0") or "0"
    return MAX_WAIT_SECONDS if len(digits) > 4 else min(int(digits), MAX_WAIT_SECONDS)


@router.post(
    "",
    status_code=202,
    response_model=PredictionOut,
    responses={**replies(PredictionOut, 200), **replies(ErrorResponse, 409, 413)},
)
async def create_prediction(
    body: PredictionCreate,
    request: Request,
    response: Response,
    tenant: CountingTenant,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1-255 printable ASCII characters. The same key and body return the same prediction.",
            json_schema_extra={"pattern": IDEMPOTENCY_KEY.pattern, "minLength": 1, "maxLength": 255},
        ),
    ] = None,
    prefer: Annotated[str | None, Header(description="`wait=N` (N <= 20): hold the reply until it finishes.")] = None,
    cache_control: Annotated[
        str | None,
        Header(
            alias="Cache-Control",
            description="`no-store` (or `no-cache`): bypass the result cache, like `parameters.cache: false`.",
        ),
    ] = None,
) -> PredictionOut:
    """Queue a prediction. `Prefer: wait=N` (N <= 20) holds the reply until it finishes or N seconds pass."""
    # Every header and the body are checked before anything is written.
    if len(await request.body()) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise ValidationFailedError("Idempotency-Key must be 1-255 printable ASCII characters")
    wait = _wait_seconds(prefer)
    bypass_cache = bool(_CACHE_BYPASS.search(cache_control or ""))
    new = body.to_domain()
    state = await admit_async(request, tenant, len(new.inputs))  # over a limit: 429, nothing written
    prediction, created = await asyncio.to_thread(
        predictions.submit, tenant, new, idempotency_key, None, bool(wait), bypass_cache, state.lane
    )
    logger.set_correlation_id(prediction.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait}"
        prediction = await predictions.wait_until_finished(tenant, prediction.id, wait)
    response.headers["Location"] = f"/v1/predictions/{prediction.id}"
    if prediction.status.is_terminal:
        response.status_code = 200
    return await asyncio.to_thread(_present, prediction)


@router.get("", response_model=PredictionList)
def list_predictions(
    tenant: Tenant,
    status: PredictionStatus | None = None,
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
) -> PredictionList:
    """The caller's predictions, newest first, without outputs. Each request does bounded work: with a `status`
    filter a page can hold fewer than `limit` items (even none) and still have a `next_cursor`; follow it until
    `next_cursor` is null."""
    page = predictions.list_for_tenant(tenant, limit, status, cursor)
    return PredictionList(data=[_summary(p) for p in page.items], next_cursor=page.next_cursor)


@router.get("/{prediction_id}", response_model=PredictionOut)
def get_prediction(prediction_id: str, tenant: Tenant) -> PredictionOut:
    return _present(predictions.get(tenant, _checked_id(prediction_id)))


@router.post("/{prediction_id}/cancel", response_model=PredictionOut, responses=replies(ErrorResponse, 409))
def cancel_prediction(prediction_id: str, tenant: Tenant) -> PredictionOut:
    """Cancel a queued or running prediction; a running one's result is discarded."""
    prediction = predictions.cancel(tenant, _checked_id(prediction_id))
    metrics.add_metric(name="PredictionsCancelled", unit=MetricUnit.Count, value=1)
    return _present(prediction)


@router.get("/{prediction_id}/webhook_deliveries", response_model=WebhookDeliveryList, response_model_exclude_none=True)
def list_webhook_deliveries(prediction_id: str, tenant: Tenant) -> WebhookDeliveryList:
    """Every delivery attempt of this object's webhook events, oldest first."""
    found = predictions.get(tenant, _checked_id(prediction_id))
    return delivery_list(found.id)


@router.post(
    "/{prediction_id}/webhook_deliveries/redeliver",
    status_code=202,
    response_model=Redelivery,
    responses=replies(ErrorResponse, 409),
)
def redeliver_webhook(prediction_id: str, tenant: Tenant) -> Redelivery:
    """Send the last event again (same `webhook-id`: receivers that already have it can drop it)."""
    found = predictions.get(tenant, _checked_id(prediction_id))
    return redelivery(found.id)
