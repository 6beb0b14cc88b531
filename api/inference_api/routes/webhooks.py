"""/v1/webhooks: the caller's signing secret for webhook deliveries (Standard Webhooks, `whsec_...`)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from inference_api.auth import Tenant
from inference_api.openapi import replies
from inference_api.schemas import ErrorResponse, Timestamp
from inference_api.strict_json import StrictJsonRoute
from inference_core.logic import webhook_secrets

router = APIRouter(
    prefix="/v1/webhooks",
    route_class=StrictJsonRoute,
    tags=["webhooks"],
    responses=replies(ErrorResponse, 401, 429),
)


class WebhookSecret(BaseModel):
    secret: str = Field(description="`whsec_` + base64 of 32 random bytes: the HMAC-SHA256 key of `v1` signatures.")
    previous_valid_until: Timestamp | None = Field(
        default=None, description="After a rotation: until when deliveries are also signed with the previous secret."
    )


@router.get("/secret", response_model=WebhookSecret)
def get_secret(tenant: Tenant) -> WebhookSecret:
    """The secret that signs this tenant's webhook deliveries (made on first read)."""
    secrets = webhook_secrets.secrets_of(tenant)
    return WebhookSecret(secret=secrets.current, previous_valid_until=_overlap(secrets))


@router.post("/secret/rotate", response_model=WebhookSecret)
def rotate_secret(tenant: Tenant) -> WebhookSecret:
    """A new secret. Deliveries are signed with both the new and the previous one for 24 hours, so receivers can
    switch without losing a delivery."""
    secrets = webhook_secrets.rotate(tenant)
    return WebhookSecret(secret=secrets.current, previous_valid_until=_overlap(secrets))


def _overlap(secrets: webhook_secrets.SigningSecrets) -> datetime | None:
    return secrets.previous_until if secrets.previous else None
