"""Webhooks as the Standard Webhooks specification defines them: `verify_webhook` for a receiver, `sign_webhook` for a
sender (and for tests).

A webhook is a POST with three headers: `webhook-id` (the message's id, the same on every redelivery: use it to
ignore duplicates), `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
`v1,<base64 HMAC-SHA256>` of `"{id}.{timestamp}.{body}"`, keyed with the secret (`whsec_<base64 key>`) decoded. While a
sender rotates its secret it signs with both the old and the new one; one matching signature is enough. Verify the
body exactly as received (its bytes, before any JSON parsing), and never log the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from inference_client.errors import ConfigurationError, WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE = 300.0
"""Seconds a webhook's timestamp may be from now, either way, before it is refused (replay protection)."""
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658: longer is not a timestamp


def webhook_key(secret: str | bytes) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` (the prefix is optional, padding may be left out), or the raw key
    as bytes. `ConfigurationError` (which never shows the secret) if it is empty or not base64."""
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.strip().removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError("the webhook secret is not base64 after its whsec_ prefix") from exc
    if not key:
        raise ConfigurationError("the webhook secret is empty")
    return key


def sign_webhook(msg_id: str, timestamp: int | datetime, body: bytes | str, secret: str | bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) for a message: its id, its timestamp (Unix seconds, or a
    datetime; a naive one is taken as UTC) and its body exactly as sent (a str is sent as UTF-8)."""
    if isinstance(timestamp, datetime):
        moment = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
        timestamp = math.floor(moment.timestamp())
    return "v1," + base64.b64encode(_digest(webhook_key(secret), msg_id, str(timestamp), body)).decode("ascii")


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | datetime | None = None,
) -> dict[str, Any]:
    """Checks a received webhook and returns its JSON payload (a dict).

    `headers`: the request's headers (any mapping; names are matched case-insensitively, so a plain dict, an
    `httpx.Headers` or a web framework's headers all work). `body`: the raw body, as bytes (or str), before any
    parsing: re-encoded JSON would not match. `secret`: `whsec_...`. `tolerance`: how many seconds the
    `webhook-timestamp` may be before or after `now` (default: the current time; Unix seconds or a datetime).

    Raises `WebhookVerificationError` (`.reason`: `missing_header`, `invalid_timestamp`, `timestamp_too_old`,
    `timestamp_too_new`, `invalid_signature_header`, `no_matching_signature`, `invalid_payload`) if the webhook
    is not authentic, is stale, or is not a JSON object; `ConfigurationError` if the secret itself is unusable.
    """
    key = webhook_key(secret)
    msg_id = _header(headers, ID_HEADER)
    timestamp_text = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)
    if not msg_id or not timestamp_text or not signatures:
        missing = [
            name
            for name, value in ((ID_HEADER, msg_id), (TIMESTAMP_HEADER, timestamp_text), (SIGNATURE_HEADER, signatures))
            if not value
        ]
        raise WebhookVerificationError("missing_header", f"no {', '.join(missing)} header")

    if not (timestamp_text.isascii() and timestamp_text.isdigit() and len(timestamp_text) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookVerificationError("invalid_timestamp", f"{TIMESTAMP_HEADER} is not Unix seconds")
    timestamp = int(timestamp_text)
    if now is None:
        current = time.time()
    elif isinstance(now, datetime):
        current = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
    else:
        current = float(now)
    if timestamp < current - tolerance:
        raise WebhookVerificationError(
            "timestamp_too_old", f"sent {current - timestamp:.0f}s ago, more than the {tolerance:g}s tolerated"
        )
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            "timestamp_too_new", f"dated {timestamp - current:.0f}s ahead, more than the {tolerance:g}s tolerated"
        )

    candidates = _v1_signatures(signatures)
    if not candidates:
        raise WebhookVerificationError("invalid_signature_header", f"no v1 signature in {SIGNATURE_HEADER}")
    expected = _digest(key, msg_id, timestamp_text, body)
    matched = False
    for candidate in candidates:  # every one is compared, in constant time
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError("no_matching_signature", "no signature matches the body and the secret")

    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookVerificationError("invalid_payload", "the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("invalid_payload", "the body is not a JSON object")
    return payload


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes | str) -> bytes:
    content = body.encode() if isinstance(body, str) else body
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + content, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # case-insensitive already for httpx.Headers and most frameworks' headers
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value is not None else None


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures (32 bytes each) of a `webhook-signature` value; other versions and malformed
    entries are skipped (a sender may add schemes this receiver does not know)."""
    signatures = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma or version != "v1":
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(signature) == hashlib.sha256().digest_size:
            signatures.append(signature)
    return signatures
