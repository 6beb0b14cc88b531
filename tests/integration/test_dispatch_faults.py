"""The dispatcher under throttling, endpoint errors, malformed records and expired requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from inference_core.dal.clients import client
from inference_core.dal.predictions import prediction_store
from inference_core.logic.dispatch import QueuedMessage, dispatch, plan_batch, send_batch
from tests.integration.conftest import Pipeline

TTL = timedelta(hours=1)


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


def test_a_refused_invocation_requeues_the_batch_so_a_retry_sends_it_again(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given predictions whose first invocation is refused after they were marked running
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, f"r{i}")["id"] for i in range(2)]
    messages = pipeline.receive("RequestQueue")
    with monkeypatch.context() as patch:
        endpoint_raises(patch, "ServiceUnavailable", 503)
        pipeline.dispatch(messages)
    after_refusal = [pipeline.get(headers, i) for i in ids]

    # When SQS delivers them again
    result = pipeline.dispatch(with_receive_count(messages, 2))

    # Then they were back to queued (no trace of the refused batch) and now run in exactly one new batch
    assert [p["status"] for p in after_refusal] == ["queued", "queued"]
    assert all(p["started_at"] is None for p in after_refusal)
    assert result == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1
    assert [pipeline.get(headers, i)["status"] for i in ids] == ["running", "running"]


def test_a_prediction_cancelled_while_its_invocation_fails_stays_cancelled(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a prediction that the user cancels while the endpoint is being invoked, and the invocation fails
    headers = pipeline.headers()
    created = pipeline.submit(headers, "cancel me mid-flight")

    def cancel_then_refuse(**_: Any) -> None:
        assert pipeline.api.post(f"/v1/predictions/{created['id']}/cancel", headers=headers).status_code == 200
        error = {
            "Error": {"Code": "ServiceUnavailable", "Message": "busy"},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        }
        raise ClientError(error, "InvokeEndpointAsync")  # type: ignore[arg-type]

    monkeypatch.setattr(client("sagemaker-runtime"), "invoke_endpoint_async", cancel_then_refuse)

    # When the dispatcher hands the batch back
    pipeline.dispatch()

    # Then the requeue, guarded by status and batch, left the cancellation alone
    assert pipeline.get(headers, created["id"])["status"] == "cancelled"


def test_a_concurrent_duplicate_delivery_invokes_the_endpoint_once(pipeline: Pipeline) -> None:
    # Given the same message delivered to two dispatchers that both read the record while it was queued
    headers = pipeline.headers()
    created = pipeline.submit(headers, "twice")
    message = pipeline.receive("RequestQueue")[0]
    now = datetime.now(UTC)
    records = prediction_store().get_many([created["id"]])
    plans = [plan_batch([QueuedMessage(message["MessageId"], message["Body"], n)], records, now, TTL) for n in (1, 2)]

    # When both send their plan
    outcomes = [send_batch(plan, now) for plan in plans]

    # Then the conditional mark lets only one batch carry the prediction, and neither fails its message
    assert [o.dispatched for o in outcomes] == [[created["id"]], []]
    assert [o.failed_message_ids for o in outcomes] == [[], []]
    assert len(pipeline.invocations) == 1


def test_a_duplicate_delivery_during_an_attempt_that_fails_keeps_its_message(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an attempt that marked the prediction running and whose invocation is about to be refused
    headers = pipeline.headers()
    created = pipeline.submit(headers, "raced")
    message = pipeline.receive("RequestQueue")[0]
    duplicate_outcomes = []

    def duplicate_arrives_then_refuse(**_: Any) -> None:
        # SQS delivers the same message to a second dispatcher while the first is still invoking
        duplicate_outcomes.append(dispatch([QueuedMessage(message["MessageId"], message["Body"], 2)]))
        error = {
            "Error": {"Code": "ServiceUnavailable", "Message": "busy"},
            "ResponseMetadata": {"HTTPStatusCode": 503},
        }
        raise ClientError(error, "InvokeEndpointAsync")  # type: ignore[arg-type]

    monkeypatch.setattr(client("sagemaker-runtime"), "invoke_endpoint_async", duplicate_arrives_then_refuse)

    # When the first attempt hands the prediction back
    first = dispatch([QueuedMessage(message["MessageId"], message["Body"], 1)])

    # Then neither delivery dropped the message: SQS will deliver it again, and the prediction is queued for it
    assert first.failed_message_ids == [message["MessageId"]]
    assert duplicate_outcomes[0].failed_message_ids == [message["MessageId"]]
    assert pipeline.get(headers, created["id"])["status"] == "queued"
