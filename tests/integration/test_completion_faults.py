"""The completion handler under malformed, unknown and partial notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.completion import handler as completion_handler
from inference_core.dal.batches import batch_store
from inference_core.dal.clients import client
from inference_core.domain.batches import BatchRecord
from inference_core.errors import TransientError
from inference_core.logic.completion import complete, parse_notification
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


def test_the_dispatcher_marks_predictions_running_before_the_endpoint_can_answer(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a prediction and an endpoint that looks at the record the moment it is invoked
    headers = pipeline.headers()
    created = pipeline.submit(headers, "fast endpoint")
    seen: list[str] = []
    invoke = client("sagemaker-runtime").invoke_endpoint_async

    def look_then_invoke(**kwargs: Any) -> Any:
        seen.append(pipeline.get(headers, created["id"])["status"])
        return invoke(**kwargs)

    monkeypatch.setattr(client("sagemaker-runtime"), "invoke_endpoint_async", look_then_invoke)

    # When the dispatcher sends the batch and the endpoint answers at once
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    outcome_of_completion = pipeline.complete()

    # Then the record was already running, so completion finished it without waiting or retrying
    assert seen == ["running"]
    assert outcome_of_completion == {"batchItemFailures": []}
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_a_notification_for_predictions_that_are_not_running_in_its_batch_changes_nothing(pipeline: Pipeline) -> None:
    # Given a batch record whose prediction is still queued (its invocation was refused and it was requeued)
    headers = pipeline.headers()
    created = pipeline.submit(headers, "requeued")
    batch_store().put(
        BatchRecord(
            batch_id="batch-requeued",
            prediction_ids=[created["id"]],
            input_location="s3://b/in",
            created_at=datetime.now(UTC),
        )
    )
    note = parse_notification(
        async_notification(
            inference_id="batch-requeued", endpoint_name="e", input_location="s3://b/in", failure_reason="boom"
        )
    )

    # When a late notification for that batch arrives
    outcome = complete(note)

    # Then it is acknowledged without effect: the prediction goes out again in a later batch
    assert outcome.ignored == [created["id"]]
    assert outcome.failed == []
    assert pipeline.get(headers, created["id"])["status"] == "queued"


def test_a_batch_invoked_but_not_recorded_is_completed_from_its_input(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch the endpoint took whose record was never written (the write failed, or the endpoint was faster)
    headers = pipeline.headers()
    created = pipeline.submit(headers, ["fast", "endpoint"])

    def record_fails(_: Any) -> None:
        raise TransientError("throttled", reason="ThrottlingException")

    with monkeypatch.context() as patch:
        patch.setattr(batch_store(), "put", record_fails)
        dispatched = pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])

    # When its notification arrives
    result = pipeline.complete()

    # Then the predictions named in the batch input are finished, without waiting for a record
    assert dispatched == {"batchItemFailures": []}
    assert result == {"batchItemFailures": []}
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"
