"""The sweeper finishes what a lost notification or an idle queue left behind, and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.sweeper import handler as sweeper_handler
from inference_core.dal.predictions import prediction_store
from inference_core.errors import TransientError
from inference_core.logic.sweeper import sweep
from tests.conftest import AwsCalls
from tests.integration.conftest import Pipeline

EVENTS = Path(__file__).resolve().parents[2] / "events"


def past_the_invocation_timeout(pipeline: Pipeline) -> datetime:
    env = pipeline.stack.env
    return datetime.now(UTC) + timedelta(
        seconds=int(env["INVOCATION_TIMEOUT_SECONDS"]) + int(env["SWEEP_MARGIN_SECONDS"]) + 1
    )


def past_the_time_to_live(pipeline: Pipeline) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=int(pipeline.stack.env["PREDICTION_TTL_SECONDS"]) + 1)


def test_a_dead_lettered_notification_is_finished_from_the_batch_output(pipeline: Pipeline) -> None:
    # Given a batch the endpoint finished whose notification never reached completion
    headers = pipeline.headers()
    created = pipeline.submit(headers, ["swept", "and found"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    assert pipeline.lose_notifications() == 1

    # When the sweeper runs past the invocation timeout
    outcome = sweep(past_the_invocation_timeout(pipeline))

    # Then the prediction holds the output the endpoint wrote, exactly as completion would have stored it
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == [[5.0, 1.0, 0.0], [9.0, 1.0, 0.0]]
    assert outcome.completed_from_output == 1


def test_a_lost_failure_notification_fails_the_batch_with_the_endpoints_reason(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "will fail")
    pipeline.dispatch()
    pipeline.endpoint_fails(pipeline.invocations[-1], "ModelError: out of memory")
    pipeline.lose_notifications()

    outcome = sweep(past_the_invocation_timeout(pipeline))

    final = pipeline.get(headers, created["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "inference_failed"
    assert "out of memory" in final["error"]["message"]
    assert outcome.failed_from_failure == 1


def test_a_batch_with_nothing_in_s3_fails_with_lost_notification(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "vanished")
    pipeline.dispatch()  # invoked, but the endpoint never writes anything

    # Past the invocation timeout it may still wait in SageMaker's own queue (up to RequestTTLSeconds): not yet lost
    early = sweep(past_the_invocation_timeout(pipeline))
    status_when_early = pipeline.get(headers, created["id"])["status"]
    later = past_the_invocation_timeout(pipeline) + timedelta(seconds=int(pipeline.stack.env["REQUEST_TTL_SECONDS"]))
    outcome = sweep(later)

    assert status_when_early == "running"
    assert early.rescheduled == 1
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "lost_notification"
    assert outcome.lost == 1


def test_a_running_prediction_within_its_timeout_is_left_alone(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "still running")
    pipeline.dispatch()

    outcome = sweep(datetime.now(UTC) + timedelta(seconds=5))

    assert pipeline.get(headers, created["id"])["status"] == "running"
    assert outcome.lost == outcome.completed_from_output == 0


def test_a_queued_prediction_nothing_dispatched_expires_after_its_time_to_live(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "forgotten")  # its message is never consumed

    early = sweep(past_the_invocation_timeout(pipeline))
    status_when_early = pipeline.get(headers, created["id"])["status"]
    late = sweep(past_the_time_to_live(pipeline))

    assert status_when_early == "queued"  # found before its time to live: rescheduled, not expired
    assert early.rescheduled == 1
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "expired"
    assert final["error"]["code"] == "expired"
    assert late.expired == 1


def test_finished_predictions_leave_the_sweepers_index(pipeline: Pipeline, aws_calls: AwsCalls) -> None:
    headers = pipeline.headers()
    pipeline.run_all(headers, "done normally")
    pipeline.api.post(f"/v1/predictions/{pipeline.submit(headers, 'cancelled')['id']}/cancel", headers=headers)
    before = aws_calls.of("dynamodb.BatchGetItem")

    outcome = sweep(past_the_time_to_live(pipeline))

    assert prediction_store().due_for_sweep(past_the_time_to_live(pipeline), 10) == []
    assert aws_calls.of("dynamodb.BatchGetItem") == before  # nothing was due, nothing read
    assert outcome.expired == outcome.lost == outcome.closed == 0


def test_sweeping_twice_changes_nothing_more(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "once")
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.lose_notifications()
    later = past_the_invocation_timeout(pipeline)

    first, second = sweep(later), sweep(later)

    assert first.completed_from_output == 1
    assert second.__dict__ == {k: 0 for k in second.__dict__}
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_the_scheduled_event_sample_runs_the_sweeper(pipeline: Pipeline) -> None:
    event = json.loads((EVENTS / "sweeper.json").read_text())

    result = sweeper_handler.lambda_handler(event, pipeline.context)

    assert set(result) >= {"expired", "lost", "completed_from_output"}


def test_a_queued_prediction_whose_message_was_dead_lettered_fails_with_the_reason(pipeline: Pipeline) -> None:
    # Given a work item that SQS moved to the request DLQ while its prediction was left queued
    headers = pipeline.headers()
    created = pipeline.submit(headers, "dead-lettered")
    message = pipeline.receive("RequestQueue")[0]
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.send_message(QueueUrl=pipeline.stack.ref("RequestDeadLetterQueue"), MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=pipeline.stack.ref("RequestQueue"), ReceiptHandle=message["ReceiptHandle"])

    # When the sweeper runs, long before the prediction's time to live
    outcome = sweep()

    # Then the prediction is failed with the reason, and the message stays in the DLQ for operators
    final = pipeline.get(headers, created["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "dispatch_failed"
    assert "dead-letter queue" in final["error"]["message"]
    assert outcome.dead_lettered == 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=pipeline.stack.ref("RequestDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"  # still there, and visible


def test_one_failing_action_does_not_stop_the_rest_of_the_sweep(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, f"forgotten {i}")["id"] for i in range(2)]
    store = prediction_store()
    real_expire = store.expire
    calls: list[str] = []

    def throttled_once(prediction_id: str, *args: Any, **kwargs: Any) -> bool:
        calls.append(prediction_id)
        if len(calls) == 1:
            raise TransientError("throttled", reason="ThrottlingException")
        return real_expire(prediction_id, *args, **kwargs)

    monkeypatch.setattr(store, "expire", throttled_once)

    first = sweep(past_the_time_to_live(pipeline))
    second = sweep(past_the_time_to_live(pipeline))

    assert first.expired == 1
    assert second.expired == 1  # the one that failed is due again and expires on the next run
    assert [pipeline.get(headers, i)["status"] for i in ids] == ["expired", "expired"]
