"""Safe retries: which failures are retried, how long the client waits, and one Idempotency-Key per logical call."""

from __future__ import annotations

import asyncio
import email.utils
import logging

import httpx
import pytest
from inference_client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitBreaker,
    ConfigurationError,
    ConflictError,
    IdempotencyConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PredictionStatus,
    RateLimitError,
    RetryPolicy,
    ServerError,
    UnprocessableEntityError,
)
from inference_client.retry import parse_retry_after

from tests.client.conftest import API_KEY, API_URL, error

RETRIED = [
    pytest.param(lambda: error(408, "request_timeout", "slow"), id="408"),
    pytest.param(lambda: error(409, "idempotency_key_in_use", "in progress"), id="409-in-progress"),
    pytest.param(lambda: error(429, "too_many_requests", "slow down"), id="429"),
    pytest.param(lambda: error(500, "internal_error", "oops"), id="500"),
    pytest.param(lambda: httpx.Response(502, text="<html>bad gateway</html>"), id="502-not-json"),
    pytest.param(lambda: error(503, "unavailable", "busy", headers={"Retry-After": "1"}), id="503"),
    pytest.param(lambda: error(504, "gateway_timeout", "slow"), id="504"),
    pytest.param(lambda: httpx.ConnectError("connection refused"), id="connect-error"),
    pytest.param(lambda: httpx.ReadTimeout("read timed out"), id="read-timeout"),
    pytest.param(lambda: httpx.RemoteProtocolError("server disconnected"), id="disconnect"),
]

NOT_RETRIED = [
    (error(400, "malformed_json", "not JSON"), BadRequestError),
    (error(401, "unauthorized", "invalid API key"), AuthenticationError),
    (error(404, "not_found", "prediction not found", {"id": "x"}), NotFoundError),
    (error(409, "idempotency_key_reused", "other body", {"prediction_id": "p"}), IdempotencyConflictError),
    (error(409, "invalid_state", "a succeeded prediction cannot be cancelled"), ConflictError),
    (error(413, "payload_too_large", "the body is larger than 204800 bytes"), PayloadTooLargeError),
    (
        error(422, "invalid_request", "schema", [{"location": ["body", "inputs"], "message": "m"}]),
        UnprocessableEntityError,
    ),
    (error(501, "not_implemented", "no"), ServerError),
]


@pytest.mark.parametrize("failure", RETRIED)
def test_each_retryable_failure_is_retried_with_the_same_idempotency_key(api, clock, make_client, failure) -> None:
    api.script = [failure(), failure()]
    with make_client() as client:
        prediction = client.predictions.create(["a text"], wait=20)

    creates = api.creates()
    assert len(creates) == 3
    keys = {r.headers["idempotency-key"] for r in creates}
    assert len(keys) == 1
    assert {r.content for r in creates} == {creates[0].content}  # the same body, so the server replays
    assert len(api.predictions) == 1  # one prediction for three attempts
    assert prediction.status == PredictionStatus.SUCCEEDED
    assert len(clock.sleeps) == 2
    assert client.metrics.snapshot()["retries"] == 2


def test_a_retry_after_a_lost_reply_returns_the_prediction_the_first_attempt_created(api, make_client) -> None:
    # The first attempt reaches the server (a prediction is created) but its reply is lost.
    def lose_reply(request: httpx.Request) -> httpx.Response | None:
        api._create(request)
        raise httpx.ReadError("connection reset")

    api.script = [lose_reply]
    with make_client() as client:
        prediction = client.predictions.create(["a text"])
    assert len(api.predictions) == 1
    assert prediction.id == next(iter(api.predictions))


@pytest.mark.parametrize(("response", "error_class"), NOT_RETRIED, ids=[r[0].status_code for r in NOT_RETRIED])
def test_other_4xx_raise_typed_errors_with_the_api_error_body_at_once(api, clock, make_client, response, error_class):
    api.script = [response]
    with make_client() as client, pytest.raises(error_class) as raised:
        client.predictions.create(["a text"])

    assert len(api.creates()) == 1
    assert clock.sleeps == []
    body = response.json()["error"]
    assert raised.value.status_code == response.status_code
    assert (raised.value.code, raised.value.message, raised.value.details) == (
        body["code"],
        body["message"],
        body["details"],
    )
    assert raised.value.to_dict() == response.json()


def test_each_logical_call_gets_its_own_idempotency_key(api, make_client) -> None:
    with make_client() as client:
        client.predictions.create(["same"])
        client.predictions.create(["same"])
        client.predictions.create(["same"], idempotency_key="order-1234")
    keys = [r.headers["idempotency-key"] for r in api.creates()]
    assert len(set(keys)) == 3
    assert keys[2] == "order-1234"
    assert all(k.isascii() and k.isprintable() and 1 <= len(k) <= 255 for k in keys)


def test_cancel_posts_carry_an_idempotency_key_too(api, make_client) -> None:
    api.polls_needed = lambda _inputs: 5
    with make_client() as client:
        prediction = client.predictions.create(["a"])
        api.script = [error(503, "unavailable", "busy")]
        cancelled = client.predictions.cancel(prediction.id)
    cancels = api.api_requests("POST", f"/v1/predictions/{prediction.id}/cancel")
    assert len(cancels) == 2
    assert cancels[0].headers["idempotency-key"] == cancels[1].headers["idempotency-key"]
    assert cancelled.status == PredictionStatus.CANCELLED


def test_backoff_is_exponential_with_full_jitter(api, clock, make_client) -> None:
    api.script = [error(500, "internal_error", "oops")] * 5
    draws = iter([1.0, 0.5, 1.0, 0.25, 1.0])
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=3.0)
    with make_client(retry=policy, random=lambda: next(draws), breaker=CircuitBreaker(0)) as client:
        client.predictions.create(["a"])
    # caps 0.5, 1, 2, 3 (max_delay), 3; each wait is a uniform draw in [0, cap]
    assert clock.sleeps == [0.5, 0.5, 2.0, 0.75, 3.0]


def test_retry_after_is_honoured_as_a_floor_and_capped(api, clock, make_client) -> None:
    api.script = [
        error(429, "too_many_requests", "slow down", headers={"Retry-After": "7"}),
        error(503, "unavailable", "busy", headers={"Retry-After": "3600"}),
    ]
    with make_client(random=lambda: 0.0, retry=RetryPolicy(max_retry_after=60.0)) as client:
        client.predictions.create(["a"])
    assert clock.sleeps == [7.0, 60.0]


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=lambda: now) == pytest.approx(30.0)
    assert parse_retry_after("2", now=lambda: now) == 2.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (lambda: error(503, "unavailable", "busy"), ServerError),
        (lambda: error(429, "too_many_requests", "slow down"), RateLimitError),
        (lambda: httpx.ConnectError("refused"), APIConnectionError),
        (lambda: httpx.ReadTimeout("timed out"), APITimeoutError),
    ],
)
def test_when_retries_run_out_the_last_failure_is_raised(api, clock, make_client, failure, error_class) -> None:
    api.script = [failure() for _ in range(4)]
    breaker = CircuitBreaker(0)  # off: this test is about the retry budget
    with make_client(retry=RetryPolicy(max_attempts=4), breaker=breaker) as client, pytest.raises(error_class) as e:
        client.predictions.get("00000000-0000-0000-0000-000000000000")
    assert e.value.attempts == 4
    assert len(api.requests) == 4
    assert len(clock.sleeps) == 3


def test_async_client_retries_with_the_same_key(api, clock, make_async_client) -> None:
    api.script = [httpx.ConnectError("refused"), error(503, "unavailable", "busy")]

    async def scenario() -> None:
        async with make_async_client() as client:
            prediction = await client.predictions.create("one text", wait=5)
            assert prediction.status == PredictionStatus.SUCCEEDED
            with pytest.raises(NotFoundError):
                await client.predictions.get("00000000-0000-0000-0000-000000000000")

    asyncio.run(scenario())
    creates = api.creates()
    assert len(creates) == 3
    assert len({r.headers["idempotency-key"] for r in creates}) == 1
    assert creates[0].headers["prefer"] == "wait=5"
    assert len(clock.sleeps) == 2


def test_configuration_comes_from_arguments_or_the_environment(monkeypatch) -> None:
    from inference_client import Client

    monkeypatch.delenv("INFERENCE_API_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="INFERENCE_API_URL"):
        Client()
    monkeypatch.setenv("INFERENCE_API_URL", API_URL + "/")
    with pytest.raises(ConfigurationError, match="INFERENCE_API_KEY"):
        Client()
    monkeypatch.setenv("INFERENCE_API_KEY", API_KEY)
    with Client() as client:
        assert client.api_url == API_URL
        assert API_KEY not in repr(client)
    with pytest.raises(ConfigurationError, match="http"):
        Client("ftp://nope", "k")


def test_logs_never_hold_the_key_or_the_payload(api, make_client, caplog) -> None:
    api.script = [error(503, "unavailable", "busy"), httpx.ConnectError("refused")]
    api.large_output = lambda _inputs: True
    caplog.set_level(logging.DEBUG, logger="inference_client")
    with make_client() as client:
        client.embed(["a very private sentence"])
    assert caplog.records  # requests, retries were logged
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "retrying POST /v1/predictions" in logged
    assert API_KEY not in logged
    assert "s3cr3t" not in logged
    assert "very private" not in logged
    assert "X-Amz-Signature" not in logged  # the output link's signature
