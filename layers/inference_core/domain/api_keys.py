"""An API key as stored: only a hash of its secret, tied to one tenant."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ApiKey(BaseModel):
    key_id: str
    tenant_id: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    name: str | None = None
