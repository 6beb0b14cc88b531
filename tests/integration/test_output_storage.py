"""Outputs stay where the endpoint wrote them: the status record holds a pointer, reads return them unchanged."""

from __future__ import annotations

import random
from typing import Any

import boto3
import httpx
import pytest

from inference_core.settings import get_settings
from tests.conftest import AwsCalls
from tests.integration.conftest import Pipeline

DIMENSIONS = 384


def realistic_model(line: dict[str, Any]) -> dict[str, Any]:
    """Answers like the real container: 384 floats per input and a truncated flag for long texts."""
    generator = random.Random(line["id"])
    vectors = [[generator.uniform(-1, 1) for _ in range(DIMENSIONS)] for _ in line["inputs"]]
    output = {
        "model": "all-MiniLM-L6-v2",
        "dimensions": DIMENSIONS,
        "embeddings": vectors,
        "truncated": [len(text) > 1000 for text in line["inputs"]],
    }
    return {"id": line["id"], "output": output}


def run(pipeline: Pipeline, headers: dict[str, str], inputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    created = pipeline.submit(headers, inputs)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1], answer=realistic_model)
    pipeline.complete()
    expected = realistic_model({"id": created["id"], "inputs": inputs if isinstance(inputs, list) else [inputs]})
    return pipeline.get(headers, created["id"]), expected["output"]


def stored_item(pipeline: Pipeline, prediction_id: str) -> dict[str, Any]:
    item: dict[str, Any] = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName=pipeline.stack.table_name, Key={"pk": {"S": f"PRED#{prediction_id}"}}
    )["Item"]
    return item


def test_a_tiny_output_reads_back_identically_from_a_byte_range(pipeline: Pipeline, aws_calls: AwsCalls) -> None:
    headers = pipeline.headers()
    before = aws_calls.of("s3.GetObject")

    final, expected = run(pipeline, headers, "tiny")

    assert final["output"] == expected
    assert final["output_url"] is None
    item = stored_item(pipeline, final["id"])
    assert "output" not in item
    assert "output_range" in item
    assert len(str(item)) < 1024  # a pointer, not 8 KB of floats
    assert aws_calls.of("s3.GetObject") - before == 2  # completion reads the batch once, the GET one range


def test_a_truncated_output_keeps_its_flags(pipeline: Pipeline) -> None:
    final, expected = run(pipeline, pipeline.headers(), ["short", "long " * 400])

    assert final["output"] == expected
    assert final["output"]["truncated"] == [False, True]


def test_a_256_input_output_reads_back_identically(pipeline: Pipeline) -> None:
    inputs = [f"text number {i}" for i in range(256)]

    final, expected = run(pipeline, pipeline.headers(), inputs)

    assert final["output"] == expected
    assert len(final["output"]["embeddings"]) == 256
    assert final["output_url"] is None
    assert "output" not in stored_item(pipeline, final["id"])


def test_an_output_over_the_inline_limit_is_copied_once_and_linked(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INLINE_OUTPUT_MAX_BYTES", "100000")
    get_settings.cache_clear()
    inputs = [f"text number {i}" for i in range(256)]

    final, expected = run(pipeline, pipeline.headers(), inputs)

    assert final["output"] is None
    key = f"{pipeline.stack.env['RESULT_PREFIX']}{final['id']}.json"
    assert key in final["output_url"]
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=pipeline.stack.bucket_name, Key=key)
    assert httpx.Response(200, content=body["Body"].read()).json() == expected


def test_several_predictions_of_one_batch_each_read_their_own_line(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, [f"text {i}"] * (i + 1))["id"] for i in range(5)]
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1], answer=realistic_model)
    pipeline.complete()

    for i, prediction_id in enumerate(ids):
        expected = realistic_model({"id": prediction_id, "inputs": [f"text {i}"] * (i + 1)})["output"]
        assert pipeline.get(headers, prediction_id)["output"] == expected
