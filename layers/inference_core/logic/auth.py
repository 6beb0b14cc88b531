"""API keys: issued once in plain text, stored only as a SHA-256 hash, each tied to one tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from inference_core.dal.api_keys import api_key_store
from inference_core.domain.api_keys import ApiKey
from inference_core.domain.clock import utc_now
from inference_core.errors import AuthenticationError, NotFoundError
from inference_core.settings import get_settings

_TOKEN = re.compile(r"^ik_(?P<key_id>[0-9a-f]{16})\.(?P<secret>[A-Za-z0-9_-]{32,128})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# key_id -> (record or None when there is no such key, monotonic time it was read). Saves a DynamoDB read per
# request on a warm Lambda, and a flood of made-up key ids costs one read per id, not per request. A revocation
# takes effect within api_key_cache_seconds (30 s by default).
_cache: dict[str, tuple[ApiKey | None, float]] = {}
_CACHE_LIMIT = 10_000


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(tenant_id: str, name: str | None = None, now: datetime | None = None) -> tuple[str, ApiKey]:
    """Returns (the key to hand to the client, the stored record). The plain key is never stored."""
    if not _TENANT.match(tenant_id):
        raise ValueError("tenant id: 1-64 letters, digits, '_', '.', '-'")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id, tenant_id=tenant_id, secret_hash=_hash(secret), created_at=now or utc_now(), name=name
    )
    api_key_store().put(record)
    return f"ik_{key_id}.{secret}", record


def revoke_api_key(key_id: str, now: datetime | None = None) -> None:
    if not api_key_store().revoke(key_id, now or utc_now()):
        raise NotFoundError("no such API key", {"key_id": key_id})
    _cache.pop(key_id, None)


def authenticate(token: str, clock: Callable[[], float] = time.monotonic) -> str:
    """Returns the tenant id the key belongs to, or raises AuthenticationError."""
    match = _TOKEN.match(token)
    if not match:
        raise AuthenticationError("malformed API key")
    key_id, secret = match["key_id"], match["secret"]
    ttl = get_settings().api_key_cache_seconds
    cached = _cache.get(key_id)
    if cached and clock() - cached[1] < ttl:
        record: ApiKey | None = cached[0]
    else:
        record = api_key_store().get(key_id)
        if ttl > 0:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
            _cache[key_id] = (record, clock())
    if record is None or not hmac.compare_digest(record.secret_hash, _hash(secret)):
        raise AuthenticationError("invalid API key")
    if record.revoked_at is not None:
        raise AuthenticationError("API key revoked")
    return record.tenant_id


def list_api_keys() -> list[ApiKey]:
    return api_key_store().list()


def clear_key_cache() -> None:
    _cache.clear()
