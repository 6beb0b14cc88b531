"""An API key as stored: only a hash of its secret, tied to one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant_id: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
    name: str | None = None
