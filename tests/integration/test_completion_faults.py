"""The completion handler under malformed, unknown and partial notifications."""

from __future__ import annotations

import json

from functions.completion import handler as completion_handler
from local_stack.events import sqs_event
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
