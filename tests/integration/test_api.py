"""The HTTP contract: authentication, tenancy, validation limits, idempotency, listing, waiting."""

from __future__ import annotations

import asyncio

import pytest

from inference_api.schemas import MAX_INPUT_CHARS, MAX_INPUTS
from inference_api.strict_json import MAX_BODY_BYTES
from inference_core.logic import predictions
from inference_core.logic.auth import create_api_key, revoke_api_key
from tests.integration.conftest import Pipeline


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


# -- authentication ------------------------------------------------------------------------------------------


def test_health_and_openapi_need_no_key(pipeline: Pipeline) -> None:
    assert pipeline.api.get("/health").json() == {"status": "ok"}
    assert "/v1/predictions" in pipeline.api.get("/openapi.json").json()["paths"]
    assert pipeline.api.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic abc",
        "Bearer not-a-key",
        "Bearer ik_0123456789abcdef.wrongsecretwrongsecretwrongsecret12",
    ],
)
def test_missing_or_invalid_keys_are_refused(pipeline: Pipeline, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = pipeline.api.post("/v1/predictions", json={"inputs": "x"}, headers=headers)

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_valid_secret_under_another_key_id_is_refused(pipeline: Pipeline) -> None:
    token, _ = create_api_key("acme")
    other, _ = create_api_key("acme")
    forged = other.split(".")[0] + "." + token.split(".")[1]

    assert pipeline.api.get("/v1/predictions", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_revoked_key_is_refused(pipeline: Pipeline) -> None:
    token, record = create_api_key("acme")
    headers = {"Authorization": f"Bearer {token}"}
    assert pipeline.api.get("/v1/predictions", headers=headers).status_code == 200

    revoke_api_key(record.key_id)

    response = pipeline.api.get("/v1/predictions", headers=headers)
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


# -- tenancy -------------------------------------------------------------------------------------------------


def test_another_tenants_prediction_answers_404_everywhere(pipeline: Pipeline) -> None:
    mine = pipeline.headers("acme")
    theirs = pipeline.headers("globex")
    created = pipeline.submit(mine, "private")

    assert pipeline.api.get(f"/v1/predictions/{created['id']}", headers=theirs).status_code == 404
    assert pipeline.api.post(f"/v1/predictions/{created['id']}/cancel", headers=theirs).status_code == 404
    assert pipeline.api.get("/v1/predictions", headers=theirs).json()["data"] == []
    assert pipeline.get(mine, created["id"])["status"] == "queued"


def test_an_unknown_or_malformed_id_answers_404(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    for prediction_id in ["00000000-0000-4000-8000-000000000000", "nope", "x" * 5000]:
        response = pipeline.api.get(f"/v1/predictions/{prediction_id}", headers=headers)
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


# -- submitting ----------------------------------------------------------------------------------------------


def test_a_submission_answers_202_with_a_location(pipeline: Pipeline) -> None:
    response = pipeline.api.post("/v1/predictions", json={"inputs": "hi"}, headers=pipeline.headers())

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["created_at"]
    assert response.headers["Location"] == f"/v1/predictions/{body['id']}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["x"] * (MAX_INPUTS + 1)}, "inputs"),
        ({"inputs": ""}, "inputs"),
        ({"inputs": "   "}, "inputs"),
        ({"inputs": "x" * (MAX_INPUT_CHARS + 1)}, "inputs"),
        ({"inputs": 42}, "inputs"),
        ({"inputs": ["ok", 42]}, "inputs"),
        ({"inputs": "x", "parameters": {"blob": "y" * 5000}}, "parameters"),
        ({"inputs": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"inputs": "x", "metadata": {"k": "v" * 513}}, "metadata"),
        ({"inputs": "x", "metadata": {"k": 1}}, "metadata"),
        ({"inputs": "x", "webhook": "http://insecure.example.com/hook"}, "webhook"),
        ({"inputs": "x", "surprise": True}, "surprise"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(pipeline: Pipeline, body: dict, field: str) -> None:
    response = pipeline.api.post("/v1/predictions", json=body, headers=pipeline.headers())

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert any(field in detail["location"] for detail in error["details"])


def test_the_largest_allowed_request_is_accepted(pipeline: Pipeline) -> None:
    body = {"inputs": ["y" * 700] * MAX_INPUTS}

    assert pipeline.api.post("/v1/predictions", json=body, headers=pipeline.headers()).status_code == 202


def test_a_body_over_the_size_limit_gets_413(pipeline: Pipeline) -> None:
    body = {"inputs": ["z" * MAX_INPUT_CHARS] * 30}

    response = pipeline.api.post("/v1/predictions", json=body, headers=pipeline.headers())

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert len(str(body)) > MAX_BODY_BYTES


def test_malformed_json_gets_400(pipeline: Pipeline) -> None:
    headers = {**pipeline.headers(), "Content-Type": "application/json"}

    response = pipeline.api.post("/v1/predictions", content=b'{"inputs": ', headers=headers)

    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


def test_unicode_inputs_are_accepted(pipeline: Pipeline) -> None:
    created = pipeline.submit(pipeline.headers(), ["naïve café", "日本語のテキスト", "emoji 🚀"])

    assert created["input_count"] == 3


# -- idempotency ---------------------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_return_the_same_prediction(pipeline: Pipeline) -> None:
    headers = pipeline.headers(**{"Idempotency-Key": "order-17"})
    first = pipeline.api.post("/v1/predictions", json={"inputs": ["a", "b"]}, headers=headers)
    second = pipeline.api.post("/v1/predictions", json={"inputs": ["a", "b"]}, headers=headers)

    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(pipeline.receive("RequestQueue")) == 1


def test_the_same_idempotency_key_with_another_body_is_a_conflict(pipeline: Pipeline) -> None:
    headers = pipeline.headers(**{"Idempotency-Key": "order-18"})
    first = pipeline.api.post("/v1/predictions", json={"inputs": "a"}, headers=headers)

    second = pipeline.api.post("/v1/predictions", json={"inputs": "b"}, headers=headers)

    assert second.status_code == 409
    error = error_of(second)
    assert error["code"] == "idempotency_key_reused"
    assert error["details"]["prediction_id"] == first.json()["id"]


def test_idempotency_keys_are_per_tenant(pipeline: Pipeline) -> None:
    one = pipeline.submit(pipeline.headers("acme", **{"Idempotency-Key": "k"}), "a")
    two = pipeline.submit(pipeline.headers("globex", **{"Idempotency-Key": "k"}), "a")

    assert one["id"] != two["id"]


def test_an_invalid_idempotency_key_gets_400(pipeline: Pipeline) -> None:
    headers = pipeline.headers(**{"Idempotency-Key": "x" * 300})

    response = pipeline.api.post("/v1/predictions", json={"inputs": "a"}, headers=headers)

    assert response.status_code == 400


# -- listing -------------------------------------------------------------------------------------------------


def test_listing_is_newest_first_paginated_and_filtered(pipeline: Pipeline) -> None:
    headers = pipeline.headers("acme")
    ids = [pipeline.submit(headers, f"text {i}")["id"] for i in range(5)]
    pipeline.api.post(f"/v1/predictions/{ids[1]}/cancel", headers=headers)

    page1 = pipeline.api.get("/v1/predictions?limit=2", headers=headers).json()
    page2 = pipeline.api.get(f"/v1/predictions?limit=2&cursor={page1['next_cursor']}", headers=headers).json()
    page3 = pipeline.api.get(f"/v1/predictions?limit=2&cursor={page2['next_cursor']}", headers=headers).json()
    cancelled = pipeline.api.get("/v1/predictions?status=cancelled", headers=headers).json()

    listed = [p["id"] for p in page1["data"] + page2["data"] + page3["data"]]
    assert listed == list(reversed(ids))
    assert (
        page3["next_cursor"] is None
        or pipeline.api.get(f"/v1/predictions?cursor={page3['next_cursor']}", headers=headers).json()["data"] == []
    )
    assert [p["id"] for p in cancelled["data"]] == [ids[1]]


def test_a_cursor_from_another_tenant_or_garbage_is_refused(pipeline: Pipeline) -> None:
    acme = pipeline.headers("acme")
    for i in range(3):
        pipeline.submit(acme, f"t{i}")
    cursor = pipeline.api.get("/v1/predictions?limit=1", headers=acme).json()["next_cursor"]

    for bad in [cursor, "garbage!!", "eyJhIjoxfQ"]:
        response = pipeline.api.get(f"/v1/predictions?cursor={bad}", headers=pipeline.headers("globex"))
        assert response.status_code == 400
        assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "status=sideways", "limit=abc"])
def test_invalid_list_queries_get_422(pipeline: Pipeline, query: str) -> None:
    assert pipeline.api.get(f"/v1/predictions?{query}", headers=pipeline.headers()).status_code == 422


# -- waiting -------------------------------------------------------------------------------------------------


def test_prefer_wait_returns_the_finished_prediction_as_soon_as_it_is_done(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "wait for me")
    tenant = "acme"
    naps: list[float] = []

    async def sleep_while_the_pipeline_runs(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            pipeline.dispatch()
            pipeline.endpoint_succeeds(pipeline.invocations[0])
            pipeline.complete()

    clock = iter(range(100)).__next__
    finished = asyncio.run(
        predictions.wait_until_finished(tenant, created["id"], 20, sleep=sleep_while_the_pipeline_runs, clock=clock)
    )

    assert finished.status.value == "succeeded"
    assert naps == [0.1, 0.2]


def test_prefer_wait_gives_up_after_the_timeout(pipeline: Pipeline) -> None:
    created = pipeline.submit(pipeline.headers(), "never finishes")
    ticks = iter([0.0, 0.5, 1.0, 2.5]).__next__

    async def no_sleep(_: float) -> None:
        return None

    result = asyncio.run(predictions.wait_until_finished("acme", created["id"], 2, sleep=no_sleep, clock=ticks))

    assert result.status.value == "queued"


def test_prefer_wait_on_the_api_answers_200_once_finished(pipeline: Pipeline) -> None:
    headers = pipeline.headers(**{"Idempotency-Key": "wait-1"})
    done = pipeline.run_all(headers, "finished already")
    assert done["status"] == "succeeded"

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": "finished already"}, headers={**headers, "Prefer": "wait=60"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=20"
