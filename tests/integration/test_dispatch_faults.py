"""The dispatcher under throttling, endpoint errors, malformed records and expired requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from inference_core.dal.clients import client
from inference_core.logic.dispatch import QueuedMessage, dispatch
from tests.integration.conftest import Pipeline


def endpoint_raises(monkeypatch: pytest.MonkeyPatch, code: str, status: int) -> None:
    def refuse(**_: Any) -> None:
        error = {
            "Error": {"Code": code, "Message": f"{code} from the endpoint"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        raise ClientError(error, "InvokeEndpointAsync")  # type: ignore[arg-type]

    monkeypatch.setattr(client("sagemaker-runtime"), "invoke_endpoint_async", refuse)


def with_receive_count(messages: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [{**m, "Attributes": {**m.get("Attributes", {}), "ApproximateReceiveCount": str(count)}} for m in messages]


def test_throttling_fails_the_batch_records_so_sqs_retries_them(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, f"t{i}")["id"] for i in range(3)]
    endpoint_raises(monkeypatch, "ThrottlingException", 400)
    messages = pipeline.receive("RequestQueue")

    result = pipeline.dispatch(messages)

    assert {f["itemIdentifier"] for f in result["batchItemFailures"]} == {m["MessageId"] for m in messages}
    assert all(pipeline.get(headers, i)["status"] == "queued" for i in ids)


def test_a_retry_after_throttling_dispatches_the_same_predictions(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "retry me")
    messages = pipeline.receive("RequestQueue")
    with monkeypatch.context() as patch:
        endpoint_raises(patch, "ThrottlingException", 400)
        pipeline.dispatch(messages)

    result = pipeline.dispatch(with_receive_count(messages, 2))

    assert result == {"batchItemFailures": []}
    assert pipeline.get(headers, created["id"])["status"] == "running"


def test_the_last_failed_attempt_marks_the_prediction_failed_with_a_reason(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "doomed")
    endpoint_raises(monkeypatch, "ValidationError", 400)
    messages = with_receive_count(pipeline.receive("RequestQueue"), int(pipeline.stack.env["MAX_RECEIVE_COUNT"]))

    result = pipeline.dispatch(messages)

    assert len(result["batchItemFailures"]) == 1  # still reported, so SQS moves it to the DLQ
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "dispatch_failed"
    assert "ValidationError from the endpoint" in final["error"]["message"]


def test_an_earlier_failed_attempt_leaves_the_prediction_queued(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "try again")
    endpoint_raises(monkeypatch, "ServiceUnavailable", 503)

    pipeline.dispatch(with_receive_count(pipeline.receive("RequestQueue"), 1))

    assert pipeline.get(headers, created["id"])["status"] == "queued"


def test_one_malformed_record_fails_alone(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    good = pipeline.submit(headers, "fine")
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.send_message(QueueUrl=pipeline.stack.ref("RequestQueue"), MessageBody='{"not": "a work item"}')
    sqs.send_message(QueueUrl=pipeline.stack.ref("RequestQueue"), MessageBody="not even json")
    messages = pipeline.receive("RequestQueue")
    bad_ids = {m["MessageId"] for m in messages if "prediction_id" not in m["Body"]}

    result = pipeline.dispatch(messages)

    assert {f["itemIdentifier"] for f in result["batchItemFailures"]} == bad_ids
    assert len(bad_ids) == 2
    assert pipeline.get(headers, good["id"])["status"] == "running"


def test_a_work_item_whose_record_is_gone_is_dropped_without_an_invocation(pipeline: Pipeline) -> None:
    orphan = {
        "prediction_id": "00000000-0000-4000-8000-000000000000",
        "tenant_id": "acme",
        "created_at": datetime.now(UTC).isoformat(),
        "inputs": ["x"],
    }
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=pipeline.stack.ref("RequestQueue"), MessageBody=json.dumps(orphan)
    )

    result = pipeline.dispatch()

    assert result == {"batchItemFailures": []}
    assert pipeline.invocations == []


def test_a_prediction_past_its_time_to_live_expires_instead_of_running(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "too late")
    messages = pipeline.receive("RequestQueue")
    later = datetime.now(UTC) + timedelta(seconds=int(pipeline.stack.env["PREDICTION_TTL_SECONDS"]) + 1)

    outcome = dispatch([QueuedMessage(m["MessageId"], m["Body"], 1) for m in messages], now=later)

    assert outcome.failed_message_ids == []
    assert outcome.batch_id is None
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "expired"
    assert final["error"]["code"] == "expired"
    assert pipeline.invocations == []
