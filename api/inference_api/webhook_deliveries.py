"""The webhook-delivery log and redelivery replies that the prediction and job routes share.

Kept apart from routes/webhooks so that building the prediction routes does not build the webhook routes too."""

from __future__ import annotations

from pydantic import BaseModel, Field

from inference_core.errors import InvalidStateError
from inference_core.logic import webhooks as webhook_logic


class WebhookDeliveryOut(BaseModel):
    webhook_id: str
    event: str
    attempt: int
    at: str
    status_code: int | None = Field(default=None, description="The receiver's answer (absent when none came).")
    error: str | None = Field(default=None, description="Why the attempt failed (absent when it was delivered).")
    duration_ms: int


class WebhookDeliveryList(BaseModel):
    data: list[WebhookDeliveryOut]


class Redelivery(BaseModel):
    webhook_id: str
    event: str


def delivery_list(subject_id: str) -> WebhookDeliveryList:
    """Attempts, oldest first."""
    return WebhookDeliveryList(
        data=[WebhookDeliveryOut(**attempt.__dict__) for attempt in webhook_logic.deliveries(subject_id)]
    )


def redelivery(subject_id: str) -> Redelivery:
    event = webhook_logic.redeliver(subject_id)
    if event is None:
        raise InvalidStateError("no webhook event was sent for this object yet", {"id": subject_id})
    return Redelivery(webhook_id=event.webhook_id, event=event.event)
