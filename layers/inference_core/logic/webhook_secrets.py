"""A tenant's webhook signing secret: read (made on first use) and rotated with a 24-hour overlap."""

from __future__ import annotations

from datetime import datetime, timedelta

from inference_core.dal.webhook_secrets import SigningSecrets, webhook_secret_store

__all__ = ["ROTATION_OVERLAP", "SigningSecrets", "rotate", "secrets_of"]
from inference_core.domain.clock import utc_now
from inference_core.domain.webhooks import new_secret
from inference_core.errors import TransientError
from inference_core.observability import logger

ROTATION_OVERLAP = timedelta(hours=24)


def secrets_of(tenant_id: str, now: datetime | None = None) -> SigningSecrets:
    """The tenant's secrets, making the first one if it has none."""
    store = webhook_secret_store()
    found = store.get(tenant_id)
    if found is not None:
        return found
    store.create(tenant_id, new_secret(), now or utc_now())  # False: another request made it; read that one
    made = store.get(tenant_id)
    if made is None:
        raise TransientError("the webhook secret is not readable yet", reason="secret not found after create")
    return made


def rotate(tenant_id: str, now: datetime | None = None) -> SigningSecrets:
    """A new current secret; the old one keeps signing (alongside) for 24 hours."""
    now = now or utc_now()
    for _ in range(3):
        current = secrets_of(tenant_id, now)
        if webhook_secret_store().rotate(tenant_id, current.current, new_secret(), now + ROTATION_OVERLAP):
            logger.info("webhook secret rotated")  # never the secret itself
            rotated = webhook_secret_store().get(tenant_id)
            if rotated is not None:
                return rotated
    raise TransientError("the webhook secret changed during the rotation; try again", reason="concurrent rotation")
