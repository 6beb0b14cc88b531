"""Regression tests for the hardening issue: bad text, deep nesting, header parsing, list cost, parameters."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from typing import Any

import boto3
import pytest

from inference_core.dal.clients import client
from inference_core.settings import get_settings
from tests.conftest import AwsCalls
from tests.integration.conftest import Pipeline
from tests.integration.test_api import error_of

REPO_PATHS = ["layers", "api", "."]


def post_raw(pipeline: Pipeline, body: bytes, **headers: str) -> Any:
    return pipeline.api.post(
        "/v1/predictions", content=body, headers={**pipeline.headers(), "Content-Type": "application/json", **headers}
    )


def nothing_was_written(pipeline: Pipeline) -> bool:
    table = boto3.client("dynamodb", region_name="us-east-1")
    items = table.scan(TableName=pipeline.stack.table_name)["Items"]
    predictions = [i for i in items if i["pk"]["S"].startswith("PRED#")]
    return not predictions and not pipeline.receive("RequestQueue")


# -- 1. text that is not valid Unicode never gets written ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        rb'{"inputs": "\ud800"}',
        rb'{"inputs": ["fine", "lone \udfff low"]}',
        rb'{"inputs": "x", "parameters": {"\ud800": true}}',
        rb'{"inputs": "x", "metadata": {"k": "\ud83d"}}',
        rb'{"inputs": "x", "metadata": {"\udc00": "v"}}',
        rb'{"inputs": "x", "webhook": "https://example.com/\ud800"}',
        b'{"inputs": "\xed\xa0\x80"}',  # a surrogate encoded as raw UTF-8 bytes
        b'{"inputs": "\xff\xfe"}',  # not UTF-8 at all
    ],
)
def test_text_that_is_not_valid_unicode_is_refused_before_anything_is_written(pipeline: Pipeline, body: bytes) -> None:
    response = post_raw(pipeline, body)

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_text"
    assert nothing_was_written(pipeline)


def test_a_properly_paired_surrogate_escape_is_fine(pipeline: Pipeline) -> None:
    response = post_raw(pipeline, rb'{"inputs": "rocket \ud83d\ude80"}')

    assert response.status_code == 202


def test_characters_sqs_refuses_are_escaped_not_lost(pipeline: Pipeline) -> None:
    created = pipeline.submit(pipeline.headers(), ["end \uffff", "\ufffe start"])

    message = pipeline.receive("RequestQueue")[0]
    assert json.loads(message["Body"])["inputs"] == ["end \uffff", "\ufffe start"]
    assert created["status"] == "queued"


# -- 2. line separators inside texts survive JSON Lines --------------------------------------------------------


def test_texts_with_unicode_line_separators_succeed(pipeline: Pipeline) -> None:
    texts = ["one\u2028two", "para\u2029graph", "next\u0085line", "form\x0cfeed"]

    done = pipeline.run_all(pipeline.headers(), texts)

    assert done["status"] == "succeeded", done
    assert [vector[0] for vector in done["output"]["embeddings"]] == [float(len(t)) for t in texts]


# -- 3. listing does bounded work whatever the filter --------------------------------------------------------


def test_a_sparse_status_filter_reads_a_bounded_number_of_pages(pipeline: Pipeline, aws_calls: AwsCalls) -> None:
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, f"t{i}")["id"] for i in range(260)]
    pipeline.api.post(f"/v1/predictions/{ids[0]}/cancel", headers=headers)  # the oldest: at the far end
    before = aws_calls.of("dynamodb.Query")

    first = pipeline.api.get("/v1/predictions?status=cancelled&limit=1", headers=headers).json()

    assert aws_calls.of("dynamodb.Query") - before <= 2
    assert first["data"] == []
    assert first["next_cursor"]
    found, cursor, pages = [], first["next_cursor"], 1
    while cursor and pages < 10:
        page = pipeline.api.get(f"/v1/predictions?status=cancelled&limit=1&cursor={cursor}", headers=headers).json()
        found += [p["id"] for p in page["data"]]
        cursor, pages = page["next_cursor"], pages + 1
    assert found == [ids[0]]


def test_lists_leave_outputs_out(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    done = pipeline.run_all(headers, "with output")

    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]

    assert done["output"] is not None
    assert [p["output"] for p in listed] == [None]
    assert listed[0]["status"] == "succeeded"


# -- 4. headers are parsed before any side effect --------------------------------------------------------------


def test_a_huge_prefer_wait_is_clamped_not_a_500(pipeline: Pipeline) -> None:
    headers = pipeline.headers(**{"Idempotency-Key": "prefer-huge"})
    pipeline.run_all(headers, "already done")

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": "already done"}, headers={**headers, "Prefer": "wait=" + "9" * 5000}
    )

    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=20"


# -- 5. nesting is bounded for every JSON the API reads --------------------------------------------------------


def test_deeply_nested_parameters_are_refused(pipeline: Pipeline) -> None:
    body = b'{"inputs": "x", "parameters": {"a": ' + b"[" * 500 + b"]" * 500 + b"}}"

    response = post_raw(pipeline, body)

    assert response.status_code == 400
    assert error_of(response)["code"] == "too_deeply_nested"
    assert nothing_was_written(pipeline)


def test_brackets_inside_strings_do_not_count_as_nesting(pipeline: Pipeline) -> None:
    assert pipeline.submit(pipeline.headers(), "[" * 1000 + "{" * 1000)["status"] == "queued"


def test_a_cursor_that_decodes_to_deep_json_is_a_400(pipeline: Pipeline) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode().rstrip("=")

    response = pipeline.api.get(f"/v1/predictions?cursor={deep[:2000]}", headers=pipeline.headers())
    deeper = pipeline.api.get("/v1/predictions", params={"cursor": deep[:2048]}, headers=pipeline.headers())

    assert response.status_code == 400
    assert deeper.status_code == 400


# -- 6. no payloads in traces --------------------------------------------------------------------------------


def test_no_handler_loads_a_tracer_that_could_record_payloads() -> None:
    code = (
        "import sys; sys.path[:0] = ['layers', 'api', '.'];"
        "import inference_api.handler, functions.dispatcher.handler, functions.completion.handler;"
        "print(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk')))"
    )
    environment = {"LAMBDA_TASK_ROOT": "/var/task", "AWS_LAMBDA_FUNCTION_NAME": "f", "PATH": "/usr/bin:/bin"}

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)

    assert result.stdout.strip() == "[]"


# -- 7. parameters are real, documented and checked ----------------------------------------------------------


@pytest.mark.parametrize(
    "parameters",
    [{"temperature": 0.5}, {"normalize": "yes"}, {"normalize": 1}, {"encoding_format": "hex"}, {"Normalize": True}],
)
def test_unknown_or_mistyped_parameters_get_422(pipeline: Pipeline, parameters: dict[str, Any]) -> None:
    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": "x", "parameters": parameters}, headers=pipeline.headers()
    )

    assert response.status_code == 422
    assert any("parameters" in d["location"] for d in error_of(response)["details"])


def test_normalize_reaches_the_model(pipeline: Pipeline) -> None:
    pipeline.submit(pipeline.headers(), "raw vectors", parameters={"normalize": False})
    pipeline.dispatch()

    assert pipeline.batch_lines(pipeline.invocations[-1])[0]["parameters"] == {"normalize": False}


def test_base64_embeddings_decode_to_the_float_ones(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    plain = pipeline.run_all(headers, ["a", "bcd"])
    created = pipeline.submit(headers, ["a", "bcd"], parameters={"encoding_format": "base64"})
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    encoded = pipeline.get(headers, created["id"])["output"]["embeddings"]

    decoded = [list(struct.unpack(f"<{len(v) // 4}f", v)) for v in (base64.b64decode(e) for e in encoded)]
    assert decoded == plain["output"]["embeddings"]


# -- nothing is left queued after a failure past the write ----------------------------------------------------


def test_an_unexpected_error_after_the_write_fails_the_record_instead_of_stranding_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("not a botocore error")

    monkeypatch.setattr(client("sqs"), "send_message", explode)
    headers = pipeline.headers()

    response = pipeline.api.post("/v1/predictions", json={"inputs": "x"}, headers=headers)

    assert response.status_code == 500
    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]
    assert [p["status"] for p in listed] == ["failed"]
    assert listed[0]["error"]["code"] == "enqueue_failed"


def test_an_unknown_key_id_costs_one_read_per_cache_period(
    pipeline: Pipeline, aws_calls: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "30")
    get_settings.cache_clear()
    bogus = {"Authorization": "Bearer ik_0123456789abcdef." + "x" * 40}
    before = aws_calls.of("dynamodb.GetItem")

    statuses = [pipeline.api.get("/v1/predictions", headers=bogus).status_code for _ in range(5)]

    assert statuses == [401] * 5
    assert aws_calls.of("dynamodb.GetItem") - before == 1


def test_a_wrong_method_names_every_allowed_one(pipeline: Pipeline) -> None:
    response = pipeline.api.request("DELETE", "/v1/predictions", headers=pipeline.headers())

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
