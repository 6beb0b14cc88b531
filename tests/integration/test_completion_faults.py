"""The completion handler under malformed, unknown and partial notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from functions.completion import handler as completion_handler
from inference_core.dal.predictions import prediction_store
from inference_core.logic.completion import BatchNotReady, complete, parse_notification
from inference_core.logic.models import BatchRecord, PredictionStatus
from local_stack.events import async_notification, sqs_event
from tests.integration.conftest import Pipeline


def test_malformed_notifications_are_rejected_alone(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "fine")
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[0])
    for junk in [
        "not json",
        json.dumps({"invocationStatus": "Completed"}),
        json.dumps(["a", "list"]),
        json.dumps({"invocationStatus": "Sideways", "inferenceId": "x"}),
    ]:
        pipeline.publish("SuccessTopic", junk)
    messages = pipeline.receive("CompletionQueue")
    assert len(messages) == 5

    result = pipeline.complete(messages)

    good = [m["MessageId"] for m in messages if "inferenceId" in m["Body"] and "Sideways" not in m["Body"]]
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    assert failed == {m["MessageId"] for m in messages} - set(good)
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_a_completed_notification_without_an_output_location_is_rejected(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "fine")
    pipeline.dispatch()
    invocation = pipeline.invocations[0]
    pipeline.publish(
        "SuccessTopic",
        json.dumps({"invocationStatus": "Completed", "inferenceId": invocation.inference_id, "responseParameters": {}}),
    )

    result = pipeline.complete()

    assert len(result["batchItemFailures"]) == 1
    assert pipeline.get(headers, created["id"])["status"] == "running"


def test_a_notification_for_an_unknown_batch_is_acknowledged_and_ignored(pipeline: Pipeline) -> None:
    pipeline.publish(
        "SuccessTopic",
        json.dumps(
            {
                "invocationStatus": "Completed",
                "inferenceId": "not-ours",
                "responseParameters": {"outputLocation": "s3://elsewhere/x.out"},
            }
        ),
    )

    assert pipeline.complete() == {"batchItemFailures": []}


def test_an_sns_envelope_is_unwrapped_as_well_as_a_raw_message(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "wrapped")
    pipeline.dispatch()
    raw = pipeline.endpoint_succeeds(pipeline.invocations[0])
    pipeline.receive("CompletionQueue")  # drop the raw delivery; deliver it wrapped instead
    envelope = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": pipeline.stack.ref("SuccessTopic"),
        "Message": raw,
    }
    message = {"MessageId": "wrapped-1", "ReceiptHandle": "rh", "Body": json.dumps(envelope), "Attributes": {}}

    event = sqs_event([message], pipeline.stack.attr("CompletionQueue", "Arn"))
    result = completion_handler.lambda_handler(event, pipeline.context)

    assert result == {"batchItemFailures": []}
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_a_notification_that_beats_the_dispatcher_waits_for_it(pipeline: Pipeline) -> None:
    # Given a batch whose endpoint finished before the dispatcher marked the prediction running
    headers = pipeline.headers()
    created = pipeline.submit(headers, "fast endpoint")
    store = prediction_store()
    batch_id = "batch-raced"
    store.put_batch(
        BatchRecord(
            batch_id=batch_id, prediction_ids=[created["id"]], input_location="s3://b/in", created_at=datetime.now(UTC)
        )
    )
    body = json.dumps({"id": created["id"], "output": {"embeddings": [[1.0]]}}) + "\n"
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=pipeline.stack.bucket_name, Key="out/raced", Body=body
    )
    note = parse_notification(
        async_notification(
            inference_id=batch_id,
            endpoint_name="e",
            input_location="s3://b/in",
            output_location=f"s3://{pipeline.stack.bucket_name}/out/raced",
        )
    )

    def dispatcher_catches_up(_: float) -> None:
        store.transition(
            created["id"],
            PredictionStatus.RUNNING,
            {PredictionStatus.QUEUED},
            {"batch_id": batch_id, "started_at": datetime.now(UTC)},
        )

    # When completion runs
    outcome = complete(note, sleep=dispatcher_catches_up)

    # Then it re-read the record and finished it
    assert outcome.succeeded == [created["id"]]
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_a_notification_whose_predictions_never_get_marked_is_retried(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "dispatcher crashed")
    prediction_store().put_batch(
        BatchRecord(
            batch_id="batch-stuck",
            prediction_ids=[created["id"]],
            input_location="s3://b/in",
            created_at=datetime.now(UTC),
        )
    )
    note = parse_notification(
        async_notification(
            inference_id="batch-stuck", endpoint_name="e", input_location="s3://b/in", failure_reason="boom"
        )
    )
    naps: list[float] = []

    with pytest.raises(BatchNotReady):
        complete(note, sleep=naps.append)

    assert naps == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert pipeline.get(headers, created["id"])["status"] == "queued"
