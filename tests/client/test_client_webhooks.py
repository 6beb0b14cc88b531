"""verify_webhook and sign_webhook against the Standard Webhooks reference implementation (the `standardwebhooks`
package, both ways), a published test vector, HMACs computed here by hand, and every way a webhook is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from inference_client import (
    ConfigurationError,
    InferenceError,
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceVerificationError

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
MSG_ID = "msg_2mJ3nKp9QxYzWv8TtR4sLbC1dE6"
NOW = 1_790_000_000
PAYLOAD = {
    "type": "prediction.succeeded",
    "timestamp": "2026-09-21T14:13:20Z",
    "data": {"id": "5b1c3f7e-2d4a-4c8e-9f10-0a1b2c3d4e5f", "status": "succeeded", "note": "café ☕"},
}
BODY = json.dumps(PAYLOAD, ensure_ascii=False).encode()


def hand_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The specification, spelled out: HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the base64 after whsec_."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(signature: str, *, msg_id: str = MSG_ID, timestamp: int = NOW) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def refused(
    headers: dict[str, str],
    body: bytes = BODY,
    *,
    secret: str = SECRET,
    now: float | datetime | None = NOW,
    tolerance: float = 300,
) -> str:
    """The reason verify_webhook gives for refusing it."""
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(headers, body, secret, now=now, tolerance=tolerance)
    assert secret not in str(raised.value)
    return raised.value.reason


# -- interoperability --------------------------------------------------------------------------------------------


def test_accepts_what_the_reference_implementation_signs() -> None:
    signature = Webhook(SECRET).sign(MSG_ID, datetime.fromtimestamp(NOW, UTC), BODY.decode())
    assert verify_webhook(headers_for(signature), BODY, SECRET, now=NOW) == PAYLOAD


def test_reference_implementation_accepts_what_we_sign() -> None:
    now = int(time.time())  # the reference verifies against the real clock
    headers = headers_for(sign_webhook(MSG_ID, now, BODY, SECRET), timestamp=now)
    assert Webhook(SECRET).verify(BODY, headers) == PAYLOAD
    with pytest.raises(ReferenceVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, headers)
    with pytest.raises(ReferenceVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"succeeded", b"failed"), headers)


def test_reference_and_hand_computed_signatures_agree_with_ours() -> None:
    when = datetime.fromtimestamp(NOW, UTC)
    ours = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    assert ours == hand_signature(SECRET, MSG_ID, NOW, BODY)
    assert ours == Webhook(SECRET).sign(MSG_ID, when, BODY.decode())
    assert sign_webhook(MSG_ID, when, BODY.decode(), SECRET) == ours  # a datetime and a str body
    assert sign_webhook(MSG_ID, when.replace(tzinfo=None), BODY, SECRET) == ours  # naive: UTC
    assert sign_webhook(MSG_ID, when.astimezone(UTC).astimezone(), BODY, SECRET) == ours  # any zone, same instant


def test_published_test_vector() -> None:
    # The example in the Standard Webhooks / Svix documentation and test suites.
    secret, msg_id, timestamp = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = '{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_webhook(msg_id, timestamp, body, secret) == expected
    headers = headers_for(expected, msg_id=msg_id, timestamp=timestamp)
    assert verify_webhook(headers, body, secret, now=timestamp + 10) == {"test": 2432232314}


def test_rotated_secret_two_signatures_either_secret_verifies() -> None:
    old, new = hand_signature(OTHER_SECRET, MSG_ID, NOW, BODY), hand_signature(SECRET, MSG_ID, NOW, BODY)
    for header in (f"{old} {new}", f"{new} {old}", f"  {old}   {new} "):
        assert verify_webhook(headers_for(header), BODY, SECRET, now=NOW) == PAYLOAD
        assert verify_webhook(headers_for(header), BODY, OTHER_SECRET, now=NOW) == PAYLOAD
    third = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert refused(headers_for(f"{old} {new}"), secret=third) == "no_matching_signature"
    # the reference agrees on the rotated header
    now = int(time.time())
    rotated = f"{hand_signature(OTHER_SECRET, MSG_ID, now, BODY)} {hand_signature(SECRET, MSG_ID, now, BODY)}"
    assert Webhook(SECRET).verify(BODY, headers_for(rotated, timestamp=now)) == PAYLOAD


def test_unknown_schemes_beside_v1_are_skipped() -> None:
    good = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    header = f"v1a,{base64.b64encode(b'e' * 64).decode()} {good} v2,whatever"
    assert verify_webhook(headers_for(header), BODY, SECRET, now=NOW) == PAYLOAD


# -- what a receiver hands it -----------------------------------------------------------------------------------


def test_header_names_are_case_insensitive_and_body_may_be_str() -> None:
    signature = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    mixed = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(NOW), "Webhook-Signature": signature}
    assert verify_webhook(mixed, BODY, SECRET, now=NOW) == PAYLOAD
    assert verify_webhook(httpx.Headers(mixed), BODY.decode(), SECRET, now=NOW) == PAYLOAD


def test_secret_forms() -> None:
    signature = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    unprefixed = SECRET.removeprefix("whsec_")
    assert verify_webhook(headers_for(signature), BODY, unprefixed, now=NOW) == PAYLOAD
    assert verify_webhook(headers_for(signature), BODY, unprefixed.rstrip("="), now=NOW) == PAYLOAD  # no padding
    assert verify_webhook(headers_for(signature), BODY, bytes(range(32)), now=NOW) == PAYLOAD  # the raw key
    for bad in ("whsec_", "whsec_not base64!", "", b""):
        with pytest.raises(ConfigurationError) as raised:
            verify_webhook(headers_for(signature), BODY, bad, now=NOW)
        assert "not base64" in str(raised.value) or "empty" in str(raised.value)


def test_now_as_datetime_and_the_tolerance_bounds() -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET))
    assert verify_webhook(headers, BODY, SECRET, now=datetime.fromtimestamp(NOW + 299, UTC)) == PAYLOAD
    assert verify_webhook(headers, BODY, SECRET, now=NOW + 300) == PAYLOAD  # exactly the tolerance: accepted
    assert verify_webhook(headers, BODY, SECRET, now=NOW - 300) == PAYLOAD
    assert verify_webhook(headers, BODY, SECRET, now=NOW + 3000, tolerance=3600) == PAYLOAD
    assert refused(headers, now=datetime.fromtimestamp(NOW, UTC) + timedelta(minutes=6)) == "timestamp_too_old"


def test_defaults_to_the_current_time() -> None:
    now = int(time.time())
    headers = headers_for(sign_webhook(MSG_ID, now, BODY, SECRET), timestamp=now)
    assert verify_webhook(headers, BODY, SECRET) == PAYLOAD
    stale = headers_for(sign_webhook(MSG_ID, now - 3600, BODY, SECRET), timestamp=now - 3600)
    assert refused(stale, now=None) == "timestamp_too_old"


# -- refusals ----------------------------------------------------------------------------------------------------


def test_tampered_body() -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET))
    assert refused(headers, BODY.replace(b"succeeded", b"failed")) == "no_matching_signature"
    assert refused(headers, BODY + b"\n") == "no_matching_signature"
    assert refused(headers, json.dumps(PAYLOAD).encode()) == "no_matching_signature"  # re-encoded: other bytes


def test_tampered_id_or_timestamp() -> None:
    signature = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    assert refused(headers_for(signature, msg_id="msg_other")) == "no_matching_signature"
    assert refused(headers_for(signature, timestamp=NOW + 1)) == "no_matching_signature"


def test_wrong_secret() -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET))
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(headers, BODY, OTHER_SECRET, now=NOW)
    assert raised.value.reason == "no_matching_signature"
    assert isinstance(raised.value, InferenceError)
    assert str(raised.value) == (
        "webhook verification failed: no signature matches the body and the secret (no_matching_signature)"
    )


def test_stale_and_future_timestamps() -> None:
    old = headers_for(sign_webhook(MSG_ID, NOW - 301, BODY, SECRET), timestamp=NOW - 301)
    ahead = headers_for(sign_webhook(MSG_ID, NOW + 301, BODY, SECRET), timestamp=NOW + 301)
    assert refused(old) == "timestamp_too_old"
    assert refused(ahead) == "timestamp_too_new"
    assert refused(old, tolerance=60, now=NOW - 200) == "timestamp_too_old"


@pytest.mark.parametrize("value", ["", "soon", "1.79e9", "-1790000000", "1790000000.5", "0x6AB1D480", "١٢٣", "9" * 13])
def test_invalid_timestamp(value: str) -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET))
    headers["webhook-timestamp"] = value
    assert refused(headers) == ("missing_header" if value == "" else "invalid_timestamp")


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(name: str) -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET))
    del headers[name]
    with pytest.raises(WebhookVerificationError) as raised:
        verify_webhook(headers, BODY, SECRET, now=NOW)
    assert raised.value.reason == "missing_header"
    assert name in str(raised.value)
    assert refused({}) == "missing_header"
    blank = {**headers_for(sign_webhook(MSG_ID, NOW, BODY, SECRET)), name: "  "}
    assert refused(blank) == "missing_header"


@pytest.mark.parametrize(
    "header",
    [
        "v1",  # no comma
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # no scheme
        "v1,not base64!",
        "v1,",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # only a scheme we do not know
        "v1:g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ],
)
def test_malformed_signature_list(header: str) -> None:
    assert refused(headers_for(header)) == "invalid_signature_header"


def test_malformed_entries_beside_a_good_signature_are_skipped() -> None:
    good = sign_webhook(MSG_ID, NOW, BODY, SECRET)
    assert verify_webhook(headers_for(f"v1 v1,!!! {good}"), BODY, SECRET, now=NOW) == PAYLOAD
    wrong = hand_signature(OTHER_SECRET, MSG_ID, NOW, BODY)
    assert refused(headers_for(f"v1 v1,!!! {wrong}")) == "no_matching_signature"
    truncated = good[: len(good) - 8] + "AAAA"  # base64, but 30 bytes: not an HMAC-SHA256
    assert refused(headers_for(truncated)) == "invalid_signature_header"
    assert verify_webhook(headers_for(f"{truncated} {good}"), BODY, SECRET, now=NOW) == PAYLOAD


@pytest.mark.parametrize("body", [b"not json", b"", b"[1, 2]", b'"a string"', b"\xff\xfe{"])
def test_signed_but_not_a_json_object(body: bytes) -> None:
    headers = headers_for(sign_webhook(MSG_ID, NOW, body, SECRET))
    assert refused(headers, body) == "invalid_payload"


# -- the README's receiver ---------------------------------------------------------------------------------------


def test_readme_fastapi_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_WEBHOOK_SECRET", SECRET)
    received: list[dict[str, object]] = []
    app = FastAPI()

    @app.post("/webhooks/inference")
    async def inference_webhook(request: Request) -> dict[str, bool]:
        try:
            event = verify_webhook(request.headers, await request.body(), os.environ["INFERENCE_WEBHOOK_SECRET"])
        except WebhookVerificationError as exc:
            raise HTTPException(400, exc.reason) from exc
        received.append(event)
        return {"ok": True}

    now = int(time.time())
    headers = headers_for(sign_webhook(MSG_ID, now, BODY, SECRET), timestamp=now)
    with TestClient(app) as http:
        assert http.post("/webhooks/inference", content=BODY, headers=headers).json() == {"ok": True}
        refused_response = http.post("/webhooks/inference", content=BODY + b" ", headers=headers)
        assert refused_response.status_code == 400
        assert refused_response.json() == {"detail": "no_matching_signature"}
    assert received == [PAYLOAD]


def test_the_client_reads_and_rotates_the_signing_secret() -> None:
    import httpx
    from inference_client import Client

    answers = iter(["whsec_" + "A" * 43 + "=", "whsec_" + "B" * 43 + "="])

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path in ("/v1/webhooks/secret", "/v1/webhooks/secret/rotate")
        return httpx.Response(200, json={"secret": next(answers), "previous_valid_until": None})

    with Client("https://api.example.com", "ik_x.y", transport=httpx.MockTransport(handler)) as client:
        assert client.webhooks.secret().startswith("whsec_A")
        assert client.webhooks.rotate_secret().startswith("whsec_B")
