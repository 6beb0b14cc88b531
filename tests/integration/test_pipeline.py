"""The whole path through every handler: API -> dispatcher -> endpoint -> SNS -> completion -> API."""

from __future__ import annotations

import json

import boto3
import pytest

from functions.dispatcher import handler as dispatcher_handler
from tests.conftest import reset_caches
from tests.integration.conftest import Pipeline, fake_model_output


def test_a_prediction_goes_from_submit_to_succeeded_through_every_handler(pipeline: Pipeline) -> None:
    # Given a client with a key
    headers = pipeline.headers("acme")

    # When it submits two texts and the pipeline runs
    created = pipeline.submit(headers, ["short", "a longer text"], metadata={"job": "42"})
    assert created["status"] == "queued"
    dispatched = pipeline.dispatch()
    running = pipeline.get(headers, created["id"])
    pipeline.endpoint_succeeds(pipeline.invocations[0])
    completed = pipeline.complete()
    final = pipeline.get(headers, created["id"])

    # Then it ran in one invocation and finished with its embeddings in input order
    assert dispatched == {"batchItemFailures": []}
    assert running["status"] == "running"
    assert running["started_at"]
    assert completed == {"batchItemFailures": []}
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == [[5.0, 1.0, 0.0], [13.0, 1.0, 0.0]]
    assert final["metadata"] == {"job": "42"}
    assert final["completed_at"] >= final["started_at"] >= final["created_at"]
    assert final["metrics"]["queue_ms"] >= 0
    assert final["metrics"]["inference_ms"] >= 0
    assert len(pipeline.invocations) == 1


def test_many_predictions_share_one_batch_object_and_one_invocation(pipeline: Pipeline) -> None:
    headers = pipeline.headers("acme")
    ids = [pipeline.submit(headers, f"text {i}")["id"] for i in range(10)]

    pipeline.dispatch()

    assert len(pipeline.invocations) == 1
    lines = pipeline.batch_lines(pipeline.invocations[0])
    assert sorted(line["id"] for line in lines) == sorted(ids)
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs = s3.list_objects_v2(Bucket=pipeline.stack.bucket_name, Prefix=pipeline.stack.env["BATCH_INPUT_PREFIX"])[
        "KeyCount"
    ]
    assert inputs == 1


def test_the_same_sqs_message_delivered_twice_is_dispatched_once(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers)
    messages = pipeline.receive("RequestQueue")

    pipeline.deliver("RequestQueue", messages, dispatcher_handler.lambda_handler)
    second = pipeline.dispatch(messages)  # at-least-once: Lambda hands the same record over again

    assert second == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1
    assert pipeline.get(headers, created["id"])["status"] == "running"


def test_a_duplicate_notification_changes_nothing(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "once")
    pipeline.dispatch()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[0])
    pipeline.complete()
    first = pipeline.get(headers, created["id"])

    pipeline.publish("SuccessTopic", notification)
    result = pipeline.complete()

    assert result == {"batchItemFailures": []}
    assert pipeline.get(headers, created["id"]) == first


def test_a_late_failure_notification_cannot_undo_a_success(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "once")
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[0])
    pipeline.complete()

    pipeline.endpoint_fails(pipeline.invocations[0], "late and wrong")
    pipeline.complete()

    final = pipeline.get(headers, created["id"])
    assert final["status"] == "succeeded"
    assert final["error"] is None


def test_a_prediction_cancelled_while_queued_is_never_sent_to_the_model(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    cancelled = pipeline.submit(headers, "cancel me")
    kept = pipeline.submit(headers, "keep me")

    response = pipeline.api.post(f"/v1/predictions/{cancelled['id']}/cancel", headers=headers)
    pipeline.dispatch()

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    lines = pipeline.batch_lines(pipeline.invocations[0])
    assert [line["id"] for line in lines] == [kept["id"]]


def test_a_prediction_cancelled_while_running_discards_its_result(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.submit(headers, "cancel me later")
    pipeline.dispatch()

    cancel = pipeline.api.post(f"/v1/predictions/{created['id']}/cancel", headers=headers)
    pipeline.endpoint_succeeds(pipeline.invocations[0])
    pipeline.complete()

    final = pipeline.get(headers, created["id"])
    assert cancel.status_code == 200
    assert final["status"] == "cancelled"
    assert final["output"] is None


def test_cancelling_a_finished_prediction_is_a_conflict(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    done = pipeline.run_all(headers)

    response = pipeline.api.post(f"/v1/predictions/{done['id']}/cancel", headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_state"


def test_a_failed_invocation_fails_its_predictions_with_the_reason(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    ids = [pipeline.submit(headers, f"text {i}")["id"] for i in range(3)]
    pipeline.dispatch()

    pipeline.endpoint_fails(pipeline.invocations[0], "ClientError: Received server error (500) from model")
    pipeline.complete()

    for prediction_id in ids:
        final = pipeline.get(headers, prediction_id)
        assert final["status"] == "failed"
        assert final["error"] == {
            "code": "inference_failed",
            "message": "ClientError: Received server error (500) from model",
        }


def test_a_per_item_model_error_fails_only_that_prediction(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    good = pipeline.submit(headers, "fine")
    bad = pipeline.submit(headers, "too odd")
    pipeline.dispatch()

    def answer(line: dict) -> dict:
        if line["id"] == bad["id"]:
            return {"id": line["id"], "error": {"code": "invalid_input", "message": "cannot embed this"}}
        return fake_model_output(line)

    pipeline.endpoint_succeeds(pipeline.invocations[0], answer)
    pipeline.complete()

    assert pipeline.get(headers, good["id"])["status"] == "succeeded"
    failed = pipeline.get(headers, bad["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "invalid_input"


def test_a_prediction_missing_from_the_output_fails_alone(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    kept = pipeline.submit(headers, "kept")
    lost = pipeline.submit(headers, "lost")
    pipeline.dispatch()

    def answer(line: dict) -> dict:
        return {"garbage": True} if line["id"] == lost["id"] else fake_model_output(line)

    pipeline.endpoint_succeeds(pipeline.invocations[0], answer)
    pipeline.complete()

    assert pipeline.get(headers, kept["id"])["status"] == "succeeded"
    assert pipeline.get(headers, lost["id"])["error"]["code"] == "missing_output"


def test_an_output_too_large_for_the_record_is_served_from_s3(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INLINE_OUTPUT_MAX_BYTES", "100")
    reset_caches()
    pipeline.watch_invocations()
    headers = pipeline.headers()
    created = pipeline.submit(headers, ["a", "b", "c", "d", "e", "f", "g"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[0])
    pipeline.complete()

    final = pipeline.get(headers, created["id"])

    assert final["status"] == "succeeded"
    assert final["output"] is None
    assert final["output_url"].startswith("https://")
    assert f"{pipeline.stack.env['RESULT_PREFIX']}{created['id']}.json" in final["output_url"]
    stored = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=pipeline.stack.bucket_name, Key=f"{pipeline.stack.env['RESULT_PREFIX']}{created['id']}.json"
    )
    assert len(json.loads(stored["Body"].read())["embeddings"]) == 7
