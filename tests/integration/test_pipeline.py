"""The whole path through every handler: API -> dispatcher -> endpoint -> SNS -> completion -> API."""

from __future__ import annotations

import boto3

from tests.integration.conftest import Pipeline


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
    assert running["status"] == "running" and running["started_at"]
    assert completed == {"batchItemFailures": []}
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == [[5.0, 1.0, 0.0], [13.0, 1.0, 0.0]]
    assert final["metadata"] == {"job": "42"}
    assert final["completed_at"] >= final["started_at"] >= final["created_at"]
    assert final["metrics"]["queue_ms"] >= 0 and final["metrics"]["inference_ms"] >= 0
    assert len(pipeline.invocations) == 1


def test_many_predictions_share_one_batch_object_and_one_invocation(pipeline: Pipeline) -> None:
    headers = pipeline.headers("acme")
    ids = [pipeline.submit(headers, f"text {i}")["id"] for i in range(10)]

    pipeline.dispatch()

    assert len(pipeline.invocations) == 1
    lines = pipeline.batch_lines(pipeline.invocations[0])
    assert sorted(line["id"] for line in lines) == sorted(ids)
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs = s3.list_objects_v2(Bucket=pipeline.stack.bucket_name, Prefix="batches/input/")["KeyCount"]
    assert inputs == 1
