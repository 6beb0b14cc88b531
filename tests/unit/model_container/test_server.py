"""The model container over its HTTP contract, with the real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from model_server.config import ServerConfig
from model_server.embedder import Embedder
from model_server.server import create_app

JSONL = {"Content-Type": "application/jsonlines"}


@pytest.fixture
def config() -> ServerConfig:
    return replace(ServerConfig.from_env(), max_input_chars=5_000, max_inputs_per_line=8)


@pytest.fixture
def server(config: ServerConfig, embedder: Embedder) -> Iterator[TestClient]:
    with TestClient(create_app(config, embedder)) as client:
        yield client


def lines(response) -> list[dict]:
    assert response.headers["content-type"].startswith("application/jsonlines")
    return [json.loads(line) for line in response.text.splitlines()]


def jsonl(*documents: object) -> str:
    return "\n".join(d if isinstance(d, str) else json.dumps(d) for d in documents) + "\n"


def test_ping_answers_once_the_model_is_loaded(server: TestClient) -> None:
    response = server.get("/ping")

    assert response.status_code == 200
    assert response.json()["model"] == "all-MiniLM-L6-v2"


def test_a_jsonlines_batch_answers_one_line_per_request_in_order(server: TestClient) -> None:
    body = jsonl(
        {"id": "a", "inputs": ["The cat sits outside", "A man is playing guitar"]}, {"id": "b", "inputs": "hi"}
    )

    answers = lines(server.post("/invocations", content=body, headers=JSONL))

    assert [a["id"] for a in answers] == ["a", "b"]
    first = answers[0]["output"]
    assert first["model"] == "all-MiniLM-L6-v2"
    assert first["dimensions"] == 384
    assert len(first["embeddings"]) == 2
    assert first["truncated"] == [False, False]
    assert np.allclose(np.linalg.norm(np.array(first["embeddings"]), axis=1), 1.0, atol=1e-5)
    assert len(answers[1]["output"]["embeddings"]) == 1


def test_each_value_is_printed_with_at_most_seven_decimals(server: TestClient) -> None:
    # Printed from float32 as-is, each value would take up to 20 characters: twice the bytes everywhere downstream.
    body = jsonl({"id": "a", "inputs": ["The cat sits outside", "A man is playing guitar"]})

    text = server.post("/invocations", content=body, headers=JSONL).text
    printed = text.split('"embeddings":[[', 1)[1].split("]]", 1)[0].replace("],[", ",").split(",")

    assert len(printed) == 2 * 384
    assert max(len(value.lstrip("-")) for value in printed) <= len("0.1234567")
    assert all(float(value) == round(float(value), 7) for value in printed)


def test_a_single_json_request_is_answered_too(server: TestClient) -> None:
    response = server.post("/invocations", json={"id": "solo", "inputs": "one text"})

    answers = lines(response)
    assert len(answers) == 1
    assert answers[0]["id"] == "solo"
    assert len(answers[0]["output"]["embeddings"][0]) == 384


def test_bad_lines_fail_alone_and_keep_their_place(server: TestClient) -> None:
    body = jsonl(
        {"id": "good-1", "inputs": "fine"},
        "this is not json",
        {"inputs": "no id"},
        {"id": "empty", "inputs": ["ok", "  "]},
        {"id": "long", "inputs": "x" * 5001},
        {"id": "types", "inputs": [1, 2]},
        {"id": "many", "inputs": ["t"] * 9},
        ["not", "an", "object"],
        {"id": "good-2", "inputs": ["also fine"]},
    )

    answers = lines(server.post("/invocations", content=body, headers=JSONL))

    assert len(answers) == 9
    codes = [a.get("error", {}).get("code") for a in answers]
    assert codes == [
        None,
        "malformed_json",
        "invalid_line",
        "empty_input",
        "input_too_long",
        "invalid_input",
        "too_many_inputs",
        "invalid_line",
        None,
    ]
    assert answers[0]["id"] == "good-1"
    assert answers[8]["id"] == "good-2"
    assert answers[3]["id"] == "empty"
    assert answers[1]["id"] is None


def test_an_empty_body_is_a_client_error(server: TestClient) -> None:
    for body in ["", "\n\n  \n"]:
        response = server.post("/invocations", content=body, headers=JSONL)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "empty_body"


def test_blank_lines_between_requests_are_skipped(server: TestClient) -> None:
    body = "\n" + jsonl({"id": "a", "inputs": "x"}) + "\n\n" + jsonl({"id": "b", "inputs": "y"})

    assert [a["id"] for a in lines(server.post("/invocations", content=body, headers=JSONL))] == ["a", "b"]


def test_an_unsupported_content_type_is_refused(server: TestClient) -> None:
    response = server.post("/invocations", content="a,b", headers={"Content-Type": "text/csv"})

    assert response.status_code == 415


def test_unicode_and_very_long_inputs_are_embedded_and_truncation_is_reported(server: TestClient) -> None:
    long_text = "word " * 1000
    body = jsonl({"id": "u", "inputs": ["naïve café", "日本語のテキスト", "emoji 🚀🚀", long_text]})

    output = lines(server.post("/invocations", content=body, headers=JSONL))[0]["output"]

    assert output["truncated"] == [False, False, False, True]
    assert all(len(v) == 384 for v in output["embeddings"])


def test_a_model_failure_fails_the_whole_invocation(config: ServerConfig, embedder: Embedder, monkeypatch) -> None:
    def out_of_memory(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(embedder, "embed", out_of_memory)
    with TestClient(create_app(config, embedder)) as client:
        response = client.post("/invocations", content=jsonl({"id": "a", "inputs": "x"}), headers=JSONL)

    assert response.status_code == 500
    assert "out of memory" in response.json()["error"]["message"]


def one_line_each(response) -> list[dict]:
    """Answers split on "\\n" only, and the same split however a reader counts line breaks."""
    body = response.text
    assert body.endswith("\n")
    assert body.split("\n")[:-1] == body.splitlines()
    return lines(response)


def test_unicode_line_breaks_inside_inputs_do_not_split_lines(server: TestClient, embedder: Embedder) -> None:
    texts = ["a line\u2028separator", "a paragraph\u2029separator", "a next-line\u0085character"]
    # As pydantic (the dispatcher) writes JSON: those characters stay raw in the body.
    body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in ({"id": "a", "inputs": texts}, {"id": "b"}))
    assert "\u2028" in body

    answers = one_line_each(server.post("/invocations", content=body.encode("utf-8"), headers=JSONL))

    assert [a["id"] for a in answers] == ["a", "b"]
    assert answers[1]["error"]["code"] == "invalid_input"
    vectors = np.array(answers[0]["output"]["embeddings"])
    assert np.allclose(vectors, embedder.embed(texts).vectors, atol=1e-5)


def test_error_answers_echo_ids_holding_line_breaks_on_one_line(server: TestClient) -> None:
    ids = ["id\u2028one", "id\u2029two", "id\u0085three"]
    body = "".join(json.dumps({"id": i, "inputs": "   "}, ensure_ascii=False) + "\n" for i in ids)
    body += json.dumps({"id": "ok\u2028", "inputs": "fine"}, ensure_ascii=False) + "\r\n"

    answers = one_line_each(server.post("/invocations", content=body.encode("utf-8"), headers=JSONL))

    assert [a["id"] for a in answers] == [*ids, "ok\u2028"]
    assert [a.get("error", {}).get("code") for a in answers] == ["empty_input"] * 3 + [None]


def test_normalize_false_returns_unnormalised_vectors_in_the_same_body(server: TestClient) -> None:
    texts = ["The cat sits outside", "A man is playing guitar", "naïve café"]
    body = jsonl(
        {"id": "raw", "inputs": texts, "parameters": {"normalize": False}},
        {"id": "unit", "inputs": texts, "parameters": {"normalize": True, "encoding_format": "float"}},
        {"id": "default", "inputs": texts},
        {"id": "b64", "inputs": texts, "parameters": {"encoding_format": "base64"}},
    )

    answers = one_line_each(server.post("/invocations", content=body, headers=JSONL))

    raw, unit, default, b64 = (np.array(a["output"]["embeddings"]) for a in answers)
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    assert np.allclose(raw / norms[:, None], unit, atol=1e-5)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert np.allclose(default, unit, atol=1e-6)
    assert np.allclose(b64, unit, atol=1e-6)  # the API layer encodes base64; the model server always sends floats
    assert all(a["output"]["dimensions"] == 384 for a in answers)


def test_bad_parameters_fail_their_line_alone(server: TestClient) -> None:
    body = jsonl(
        {"id": "good-1", "inputs": "fine", "parameters": {"normalize": False}},
        {"id": "unknown", "inputs": "x", "parameters": {"truncate": True}},
        {"id": "type", "inputs": "x", "parameters": {"normalize": "no"}},
        {"id": "format", "inputs": "x", "parameters": {"encoding_format": "int8"}},
        {"id": "shape", "inputs": "x", "parameters": ["normalize"]},
        {"id": "good-2", "inputs": ["also fine"], "parameters": None},
    )

    response = server.post("/invocations", content=body, headers=JSONL)

    assert response.status_code == 200
    answers = one_line_each(response)
    assert [a["id"] for a in answers] == ["good-1", "unknown", "type", "format", "shape", "good-2"]
    assert [a.get("error", {}).get("code") for a in answers] == [None] + ["invalid_parameters"] * 4 + [None]
    assert "'truncate'" in answers[1]["error"]["message"]
    assert "'normalize'" in answers[2]["error"]["message"]
    assert "'encoding_format'" in answers[3]["error"]["message"]
    assert "'parameters'" in answers[4]["error"]["message"]
    assert len(answers[0]["output"]["embeddings"]) == 1
    assert len(answers[5]["output"]["embeddings"]) == 1


def test_a_bulk_invocation_answers_exactly_as_an_interactive_one(server: TestClient) -> None:
    body = jsonl(*({"id": str(i), "inputs": [f"text {i}", f"another {i}"]} for i in range(40)))
    bulk_headers = {**JSONL, "X-Amzn-SageMaker-Custom-Attributes": "priority=bulk"}

    bulk = lines(server.post("/invocations", content=body, headers=bulk_headers))
    interactive = lines(server.post("/invocations", content=body, headers=JSONL))

    assert [a["id"] for a in bulk] == [str(i) for i in range(40)]
    for b, i in zip(bulk, interactive, strict=True):
        assert np.allclose(b["output"]["embeddings"], i["output"]["embeddings"], atol=1e-5)
