"""POST /v1/embeddings over moto: a request that outlives the wait is a 503 the SDK retries, and the retry collects
the same predictions instead of computing them again."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.usefixtures("aws")


def test_a_request_past_the_wait_is_503_and_its_retry_collects_the_same_predictions(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inference_api.routes.openai_compat.MAX_WAIT_SECONDS", 0.2)
    headers = pipeline.headers()
    body = {"model": "all-MiniLM-L6-v2", "input": ["one", "two"], "encoding_format": "float"}

    first = pipeline.api.post("/v1/embeddings", json=body, headers=headers)
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "1"
    assert "x-should-retry" not in first.headers  # the SDK retries it
    assert first.json()["error"]["type"] == "server_error"
    assert first.json()["error"]["code"] == "not_finished"

    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    again = pipeline.api.post("/v1/embeddings", json=body, headers=headers)

    assert again.status_code == 200, again.text
    assert [d["index"] for d in again.json()["data"]] == [0, 1]
    assert len(pipeline.invocations) == 1  # computed once
    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]
    assert len(listed) == 1  # one prediction: the retry found it by its key


def test_unknown_routes_and_bad_keys_answer_in_openais_envelope(pipeline: Pipeline) -> None:
    unauthorized = pipeline.api.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x"}, headers={"Authorization": "Bearer nope"}
    )
    models = pipeline.api.get("/v1/models", headers=pipeline.headers())

    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["code"] == "invalid_api_key"
    assert unauthorized.headers["x-request-id"].startswith("req_")
    assert models.json() == {
        "object": "list",
        "data": [
            {"id": "all-MiniLM-L6-v2", "object": "model", "created": 1628553600, "owned_by": "sentence-transformers"}
        ],
    }
