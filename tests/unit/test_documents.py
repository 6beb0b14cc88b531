"""The consumers' documents without pydantic: what they refuse, what they round-trip, and that no consumer's cold
start loads pydantic again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from inference_core.domain.batches import AsyncInferenceNotification, BatchLine, ResultLine, WorkItem
from inference_core.domain.documents import InvalidDocument
from inference_core.domain.inputs import ENCODINGS, PARAMETER_NAMES
from inference_core.domain.job_lines import parse_line
from inference_core.domain.predictions import ErrorInfo, Prediction, PredictionStatus
from inference_core.domain.result_cache import CachePlanLine
from inference_core.logic.payloads import prediction_payload
from inference_core.logic.views import PredictionOut

ROOT = Path(__file__).resolve().parents[2]
GOOD_WORK = {
    "prediction_id": "p1",
    "tenant_id": "t1",
    "created_at": "2026-12-07T15:33:21.123456Z",
    "inputs": ["héllo", "wörld"],
    "parameters": {"normalize": False},
}


def test_a_work_item_round_trips_and_keeps_text_as_utf8() -> None:
    work = WorkItem.from_json(json.dumps(GOOD_WORK))

    assert work.created_at == datetime(2026, 12, 7, 15, 33, 21, 123456, tzinfo=UTC)
    assert WorkItem.from_json(work.to_json()) == work
    assert "héllo" in work.to_json()  # not \u escapes: the message stays as small as pydantic's was


@pytest.mark.parametrize(
    "change",
    [
        {"prediction_id": ""},
        {"prediction_id": 7},
        {"tenant_id": None},
        {"created_at": "yesterday"},
        {"created_at": 1765121601},
        {"inputs": []},
        {"inputs": "one text"},
        {"inputs": ["a", 2]},
        {"inputs": ["\ud800"]},
        {"parameters": None},
        {"parameters": [1]},
    ],
)
def test_a_work_item_with_a_bad_field_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidDocument):
        WorkItem.from_json(json.dumps({**GOOD_WORK, **change}))


@pytest.mark.parametrize("raw", [b"", b"[]", b'"text"', b"\xff\xfe", b"{" * 100_000, b'{"prediction_id": "p"}'])
def test_a_message_that_is_not_a_work_item_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocument):
        WorkItem.from_json(raw)


def test_a_missing_work_field_is_refused_for_each_field() -> None:
    for name in ("prediction_id", "tenant_id", "created_at", "inputs"):
        with pytest.raises(InvalidDocument, match=name):
            WorkItem.from_json(json.dumps({k: v for k, v in GOOD_WORK.items() if k != name}))


def test_batch_lines_default_their_parameters_and_ignore_unknown_keys() -> None:
    line = BatchLine.from_json(b'{"id": "a", "inputs": ["x"], "later": 1}')

    assert line == BatchLine(id="a", inputs=["x"], parameters={})
    assert json.loads(line.to_json()) == {"id": "a", "inputs": ["x"], "parameters": {}}


def test_result_lines_read_outputs_and_errors_and_refuse_a_half_error() -> None:
    assert ResultLine.from_json(b'{"id": "a", "output": {"embeddings": [[0.5]]}}').output == {"embeddings": [[0.5]]}
    failed = ResultLine.from_json(b'{"id": "a", "error": {"code": "oom", "message": "out of memory"}}')
    assert failed.error == ErrorInfo(code="oom", message="out of memory")
    for raw in (b'{"id": "a", "error": {"code": "oom"}}', b'{"id": 3}', b'{"output": [1]}'):
        with pytest.raises(InvalidDocument):
            ResultLine.from_json(raw)


def test_a_notification_needs_a_known_status_and_an_id() -> None:
    good = {"invocationStatus": "Completed", "inferenceId": "b1", "responseParameters": {"outputLocation": "s3://o"}}
    assert AsyncInferenceNotification.from_document(good).response_parameters.output_location == "s3://o"
    for bad in ({**good, "invocationStatus": "Done"}, {**good, "inferenceId": ""}, {**good, "responseParameters": 1}):
        with pytest.raises(InvalidDocument):
            AsyncInferenceNotification.from_document(bad)


def test_a_cache_plan_line_round_trips_without_an_output_key_when_nothing_hit() -> None:
    line = CachePlanLine(id="a", keys=["k1"])
    assert line.to_document() == {"id": "a", "keys": ["k1"]}
    assert CachePlanLine.from_json(json.dumps(line.to_document())) == line


def test_job_lines_accept_exactly_the_parameters_the_http_api_documents() -> None:
    from inference_api.schemas import EmbeddingParameters

    assert set(PARAMETER_NAMES) == set(EmbeddingParameters.model_fields)
    assert set(ENCODINGS) == set(EmbeddingParameters.model_json_schema()["properties"]["encoding_format"]["enum"])
    parsed = parse_line(b'{"custom_id": "a", "inputs": "x", "parameters": {"encoding_format": "jpeg"}}', 1)
    assert parsed.error is not None
    assert parsed.error.error.message.startswith("parameters.encoding_format:")


def test_the_api_view_of_a_prediction_is_its_webhook_payload() -> None:
    created = datetime(2026, 12, 7, 15, 0, 0, 123456, tzinfo=UTC)
    prediction = Prediction(
        id="p1",
        tenant_id="t1",
        status=PredictionStatus.FAILED,
        created_at=created,
        input_count=2,
        metadata={"k": "v"},
        started_at=created,
        completed_at=created,
        error=ErrorInfo.of("oom", "out of memory"),
    )
    payload = prediction_payload(prediction, {"embeddings": [[1.0]]}, None)

    assert PredictionOut.model_validate(payload).model_dump(mode="json") == payload


def test_no_consumer_loads_pydantic_when_its_handler_is_imported() -> None:
    """Their cold start (bench/coldstart.py) is measured against boto3 + a lazy `import pydantic`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    loaded = {}
    for name in ("dispatcher", "completion", "sweeper", "webhooks", "jobs"):
        code = ROOT / "functions" / name
        env["PYTHONPATH"] = os.pathsep.join([str(code), str(ROOT / "layers")])
        check = "import sys, handler; print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic_core'))"
        result = subprocess.run(
            [sys.executable, "-c", check], cwd=code, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        loaded[name] = result.stdout.strip()
    assert loaded == dict.fromkeys(loaded, "[]")
