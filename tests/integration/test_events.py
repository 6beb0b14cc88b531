"""Every file in events/ (the samples for `sam local invoke`) goes through its handler and does its job."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.completion import handler as completion_handler
from functions.dispatcher import handler as dispatcher_handler
from functions.jobs import handler as jobs_handler
from functions.sweeper import handler as sweeper_handler
from inference_api import handler as api_handler
from inference_core.dal.api_keys import api_key_store
from inference_core.dal.batches import batch_store
from inference_core.dal.predictions import prediction_store
from inference_core.domain.api_keys import ApiKey
from inference_core.domain.batches import BatchRecord
from inference_core.domain.predictions import Prediction, PredictionStatus
from local_stack.provision import Stack
from tests.integration.conftest import Pipeline

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def run_api(pipeline: Pipeline, event: dict[str, Any]) -> None:
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    key_id, secret = token.removeprefix("ik_").split(".")
    api_key_store().put(
        ApiKey(
            key_id=key_id,
            tenant_id="sample-tenant",
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
            created_at=datetime.now(UTC),
        )
    )

    # Mangum runs on the thread's current event loop, as in Lambda; an earlier asyncio.run() may have unset it.
    asyncio.set_event_loop(asyncio.new_event_loop())
    response = api_handler.lambda_handler(event, pipeline.context)

    assert response["statusCode"] == 202, response["body"]
    assert json.loads(response["body"])["status"] == "queued"
    assert len(pipeline.receive("RequestQueue")) == 1


def run_dispatcher(pipeline: Pipeline, event: dict[str, Any]) -> None:
    work = json.loads(event["Records"][0]["body"])
    prediction_store().create(
        Prediction(
            id=work["prediction_id"],
            tenant_id=work["tenant_id"],
            status=PredictionStatus.QUEUED,
            created_at=datetime.now(UTC),
            input_count=len(work["inputs"]),
        ),
        sweep_at=datetime.now(UTC),
    )

    response = dispatcher_handler.lambda_handler(event, pipeline.context)

    assert response == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1
    assert prediction_store().get(work["prediction_id"]).status == PredictionStatus.RUNNING


def run_completion(pipeline: Pipeline, event: dict[str, Any]) -> None:
    note = json.loads(event["Records"][0]["body"])
    batch_id = note["inferenceId"]
    prediction_id = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
    store = prediction_store()
    store.create(
        Prediction(
            id=prediction_id,
            tenant_id="sample-tenant",
            status=PredictionStatus.QUEUED,
            created_at=datetime.now(UTC),
            input_count=1,
        ),
        sweep_at=datetime.now(UTC),
    )
    store.mark_running([prediction_id], batch_id, datetime.now(UTC))
    batch_store().put(
        BatchRecord(
            batch_id=batch_id,
            prediction_ids=[prediction_id],
            input_location=note["requestParameters"]["inputLocation"],
            created_at=datetime.now(UTC),
        )
    )
    bucket, key = note["responseParameters"]["outputLocation"].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    line = {"id": prediction_id, "output": {"model": "m", "dimensions": 2, "embeddings": [[0.6, 0.8]]}}
    s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(line) + "\n").encode())

    response = completion_handler.lambda_handler(event, pipeline.context)

    assert response == {"batchItemFailures": []}
    assert store.get(prediction_id).status == PredictionStatus.SUCCEEDED


def run_sweeper(pipeline: Pipeline, event: dict[str, Any]) -> None:
    response = sweeper_handler.lambda_handler(event, pipeline.context)

    assert response["expired"] == response["lost"] == 0


def run_jobs(pipeline: Pipeline, event: dict[str, Any]) -> None:
    body = event["Records"][0]["body"]
    notification = json.loads(body)["Records"][0]["s3"]
    pipeline.headers(notification["object"]["key"].split("/")[1])  # the inbox tenant has an API key
    # The sample names the local stack's bucket; the file it announces is put there (events off: moto's own
    # notification would start a second, identical delivery).
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_notification_configuration(Bucket=pipeline.stack.bucket_name, NotificationConfiguration={})
    lines = [{"custom_id": "1", "inputs": "The cat sits outside"}, {"custom_id": "2", "inputs": ["A", "B"]}]
    s3.put_object(
        Bucket=pipeline.stack.bucket_name,
        Key=notification["object"]["key"],
        Body=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
    )
    sample = {
        "Records": [
            {**event["Records"][0], "body": body.replace(notification["bucket"]["name"], pipeline.stack.bucket_name)}
        ]
    }

    response = jobs_handler.lambda_handler(sample, pipeline.context)

    assert response == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1  # both lines in one chunk, at the endpoint
    again = jobs_handler.lambda_handler(sample, pipeline.context)  # S3 delivers at least once
    assert again == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1


RUNNERS: dict[str, Callable[[Pipeline, dict[str, Any]], None]] = {
    "api.json": run_api,
    "dispatcher.json": run_dispatcher,
    "completion.json": run_completion,
    "sweeper.json": run_sweeper,
    "jobs.json": run_jobs,
}


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("*.json")))
def test_every_sample_event_runs_through_its_handler(pipeline: Pipeline, aws: Stack, name: str) -> None:
    assert name in RUNNERS, f"events/{name} has no handler test: add it to RUNNERS"
    RUNNERS[name](pipeline, load(name))


def test_a_large_reply_goes_out_gzipped_through_mangum_to_clients_that_accept_it(pipeline: Pipeline) -> None:
    event = load("api.json")
    event.update(rawPath="/openapi.json", body="", headers={"accept-encoding": "gzip, deflate"})
    event["requestContext"]["http"].update(method="GET", path="/openapi.json")
    plain = {**event, "headers": {}}

    asyncio.set_event_loop(asyncio.new_event_loop())
    zipped = api_handler.lambda_handler(event, pipeline.context)
    unzipped = api_handler.lambda_handler(plain, pipeline.context)

    assert zipped["statusCode"] == unzipped["statusCode"] == 200
    assert zipped["headers"]["content-encoding"] == "gzip"
    assert zipped["isBase64Encoded"] is True
    document = json.loads(gzip.decompress(base64.b64decode(zipped["body"])))
    assert document == json.loads(unzipped["body"])
    assert "content-encoding" not in unzipped["headers"]
    assert len(base64.b64decode(zipped["body"])) < len(unzipped["body"]) / 2
