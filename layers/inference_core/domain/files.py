"""Files of the OpenAI-compatible API: a batch's input uploaded through POST /v1/files, and a batch's output and
error files. The bytes are one object in the data bucket; the record says whose they are and until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class FilePurpose(StrEnum):
    BATCH = "batch"  # an uploaded batch input
    BATCH_OUTPUT = "batch_output"  # a batch's output or error file


# OpenAI's bounds on `expires_after.seconds`, and what a batch file gets without one.
MIN_EXPIRY = timedelta(hours=1)
MAX_EXPIRY = timedelta(days=30)
DEFAULT_EXPIRY = MAX_EXPIRY


@dataclass(frozen=True)
class StoredFile:
    id: str
    tenant_id: str
    filename: str
    purpose: FilePurpose
    bytes: int
    created_at: datetime
    expires_at: datetime
    object_key: str

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= now
