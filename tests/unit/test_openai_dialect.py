"""OpenAI's dialect in the domain: batch request lines into job lines, job result lines into OpenAI's, the ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inference_core.domain import openai_dialect as dialect
from inference_core.domain.jobs import error_line, output_line
from inference_core.domain.openai_requests import parse_batch_line
from inference_core.domain.predictions import ErrorInfo


def raw(custom_id: str = "a", body: Any = None, **envelope: Any) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", **envelope}
    line["body"] = body if body is not None else {"model": "all-MiniLM-L6-v2", "input": "hello"}
    return json.dumps(line).encode()


def test_a_request_line_becomes_a_job_line_with_its_encoding() -> None:
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": ["a", "b"], "encoding_format": "base64"}

    parsed = parse_batch_line(raw("doc-1", body), 7)

    assert parsed.error is None
    assert parsed.line is not None
    assert parsed.line.custom_id == "doc-1"
    assert parsed.line.texts == ["a", "b"]
    assert parsed.line.model_parameters() == {"encoding_format": "base64"}


def test_token_ids_are_decoded_and_float_is_the_default_encoding() -> None:
    parsed = parse_batch_line(raw(body={"model": "all-MiniLM-L6-v2", "input": [15339, 1917]}), 1)

    assert parsed.line is not None
    assert parsed.line.texts == ["hello world"]
    assert parsed.line.model_parameters() == {"encoding_format": "float"}


@pytest.mark.parametrize(
    ("line", "code", "keeps_id"),
    [
        (raw(body={"model": "gpt-4", "input": "x"}), "model_not_found", True),
        (raw(body={"model": "all-MiniLM-L6-v2", "input": ""}), "invalid_request", True),
        (raw(body={"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 3}), "invalid_request", True),
        (raw(body={"model": "all-MiniLM-L6-v2", "input": ["x"] * 257}), "invalid_request", True),
        (raw(body={"input": "x"}), "invalid_request", True),
        (raw(url="/v1/chat/completions"), "invalid_request", True),
        (raw(method="GET"), "invalid_request", True),
        (b"not json", "invalid_request", False),
        (b'"a string"', "invalid_request", False),
        (raw("x" * 513), "invalid_request", False),
    ],
)
def test_a_line_that_cannot_run_keeps_its_custom_id_and_the_routes_code(line: bytes, code: str, keeps_id: bool) -> None:
    parsed = parse_batch_line(line, 3)

    assert parsed.line is None
    assert parsed.error is not None
    assert parsed.error.line == 3
    assert parsed.error.error.code == code
    assert (parsed.error.custom_id == "a") is keeps_id


def test_an_output_line_becomes_an_embeddings_response_with_a_stable_id() -> None:
    native = json.loads(output_line(4, "doc", {"embeddings": [[0.5, 1.0]], "prompt_tokens": 3}))

    first = json.loads(dialect.result_line("job_" + "a" * 32, native))
    again = json.loads(dialect.result_line("job_" + "a" * 32, native))

    assert first == again
    assert first["id"].startswith("batch_req_")
    assert first["custom_id"] == "doc"
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"].startswith("req_")
    assert first["response"]["body"] == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 1.0]}],
        "model": "all-MiniLM-L6-v2",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


@pytest.mark.parametrize(
    ("code", "status"), [("model_not_found", 404), ("invalid_request", 400), ("inference_failed", 500), ("lost", 500)]
)
def test_an_error_line_is_a_response_with_the_status_the_route_would_answer(code: str, status: int) -> None:
    native = json.loads(error_line(2, "doc", ErrorInfo.of(code, "why")))

    converted = json.loads(dialect.result_line("job_x", native))

    assert converted["error"] is None
    assert converted["response"]["status_code"] == status
    assert converted["response"]["body"]["error"]["message"] == "why"
    assert converted["response"]["body"]["error"]["code"] == code


@pytest.mark.parametrize(("code", "openai_code"), [("cancelled", "batch_cancelled"), ("expired", "batch_expired")])
def test_a_line_that_never_ran_has_an_error_and_no_response(code: str, openai_code: str) -> None:
    native = json.loads(error_line(2, "doc", ErrorInfo.of(code, "never ran")))

    converted = json.loads(dialect.result_line("job_x", native))

    assert converted["response"] is None
    assert converted["error"] == {"code": openai_code, "message": "never ran"}


def test_ids_round_trip_and_foreign_ones_are_refused() -> None:
    job_id = "job_" + "0123456789abcdef" * 2

    assert dialect.job_id_of(dialect.batch_id(job_id)) == job_id
    for foreign in ("batch_", "batch_XYZ", "job_" + "0" * 32, "batch_" + "0" * 31, "batch_" + "0" * 32 + "/x"):
        assert dialect.job_id_of(foreign) is None
    assert dialect.is_file_id(dialect.result_file_id(job_id, "output"))
    assert dialect.result_file_id(job_id, "output") != dialect.result_file_id(job_id, "errors")
    assert not dialect.is_file_id("file-../../x")
