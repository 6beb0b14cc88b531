"""Drives the real handlers over moto like Lambda would, and plays SageMaker's part where moto cannot."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from functions.completion import handler as completion_handler
from functions.dispatcher import handler as dispatcher_handler
from inference_api.app import create_app
from inference_core.dal.clients import client
from inference_core.logic.auth import create_api_key
from local_stack.events import async_notification, sqs_event
from local_stack.provision import Stack

REGION = "us-east-1"


@dataclass
class Invocation:
    inference_id: str
    input_location: str
    filename: str | None = None


def fake_model_output(line: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for the model container's per-line answer (the real model is tested in tests/unit/model)."""
    embeddings = [[float(len(text)), 1.0, 0.0] for text in line["inputs"]]
    truncated = [len(text) > 100 for text in line["inputs"]]
    output = {"model": "test-model", "dimensions": 3, "embeddings": embeddings, "truncated": truncated}
    return {"id": line["id"], "output": output}


@dataclass
class Pipeline:
    stack: Stack
    context: Any
    api: TestClient
    invocations: list[Invocation] = field(default_factory=list)

    # -- clients ---------------------------------------------------------------------------------------------

    def headers(self, tenant: str = "acme", **extra: str) -> dict[str, str]:
        token, _ = create_api_key(tenant)
        return {"Authorization": f"Bearer {token}", **extra}

    def submit(self, headers: dict[str, str], inputs: Any = "hello world", **body: Any) -> dict[str, Any]:
        response = self.api.post("/v1/predictions", json={"inputs": inputs, **body}, headers=headers)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, headers: dict[str, str], prediction_id: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/predictions/{prediction_id}", headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    # -- Lambda's part -----------------------------------------------------------------------------------------

    def receive(self, queue: str, max_messages: int = 10) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        response = sqs.receive_message(
            QueueUrl=self.stack.ref(queue), MaxNumberOfMessages=max_messages, AttributeNames=["All"], WaitTimeSeconds=0
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def deliver(self, queue: str, messages: list[dict[str, Any]], handler: Callable[..., Any]) -> dict[str, Any]:
        """Call a handler with Lambda's SQS event and delete the records it did not report as failed."""
        event = sqs_event(messages, self.stack.attr(queue, "Arn"), REGION)
        result: dict[str, Any] = handler(event, self.context)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        sqs = boto3.client("sqs", region_name=REGION)
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.stack.ref(queue), ReceiptHandle=message["ReceiptHandle"])
        return result

    def dispatch(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        batch = messages if messages is not None else self.receive("RequestQueue")
        return self.deliver("RequestQueue", batch, dispatcher_handler.lambda_handler)

    def lose_notifications(self) -> int:
        """What a dead-lettered notification looks like from here: it never reaches the completion function."""
        lost = self.receive("CompletionQueue")
        sqs = boto3.client("sqs", region_name=REGION)
        for message in lost:
            sqs.delete_message(QueueUrl=self.stack.ref("CompletionQueue"), ReceiptHandle=message["ReceiptHandle"])
        return len(lost)

    def complete(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        batch = messages if messages is not None else self.receive("CompletionQueue")
        return self.deliver("CompletionQueue", batch, completion_handler.lambda_handler)

    # -- SageMaker's part (moto accepts InvokeEndpointAsync but runs nothing and notifies no one) ---------------

    def batch_lines(self, invocation: Invocation) -> list[dict[str, Any]]:
        bucket, key = invocation.input_location.removeprefix("s3://").split("/", 1)
        body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
        return [json.loads(line) for line in body.decode().split("\n") if line.strip()]

    def endpoint_succeeds(
        self, invocation: Invocation, answer: Callable[[dict[str, Any]], dict[str, Any]] = fake_model_output
    ) -> str:
        """Write the batch output where SageMaker would and publish its success notification."""
        body = "".join(json.dumps(answer(line)) + "\n" for line in self.batch_lines(invocation))
        key = f"{self.stack.bucket_prefix('BatchOutputPrefix')}{invocation.filename or f'{uuid.uuid4()}.out'}"
        boto3.client("s3", region_name=REGION).put_object(Bucket=self.stack.bucket_name, Key=key, Body=body.encode())
        notification = async_notification(
            inference_id=invocation.inference_id,
            endpoint_name=self.stack.env["ENDPOINT_NAME"],
            input_location=invocation.input_location,
            output_location=f"s3://{self.stack.bucket_name}/{key}",
        )
        self.publish("SuccessTopic", notification)
        return notification

    def endpoint_fails(self, invocation: Invocation, reason: str) -> str:
        """Write the failure object where SageMaker would and publish its error notification."""
        stem = (invocation.filename or f"{uuid.uuid4()}.out").removesuffix(".out")
        key = f"{self.stack.bucket_prefix('BatchFailurePrefix')}{stem}-error.out"
        boto3.client("s3", region_name=REGION).put_object(Bucket=self.stack.bucket_name, Key=key, Body=reason.encode())
        notification = async_notification(
            inference_id=invocation.inference_id,
            endpoint_name=self.stack.env["ENDPOINT_NAME"],
            input_location=invocation.input_location,
            failure_location=f"s3://{self.stack.bucket_name}/{key}",
            failure_reason=reason,
        )
        self.publish("ErrorTopic", notification)
        return notification

    def publish(self, topic: str, message: str) -> None:
        boto3.client("sns", region_name=REGION).publish(TopicArn=self.stack.ref(topic), Message=message)

    def watch_invocations(self) -> None:
        """Record every InvokeEndpointAsync the code makes (call again after the cached clients are reset)."""

        def record(params: dict[str, Any], **_: Any) -> None:
            self.invocations.append(Invocation(params["InferenceId"], params["InputLocation"], params.get("Filename")))

        client("sagemaker-runtime").meta.events.register(
            "provide-client-params.sagemaker-runtime.InvokeEndpointAsync", record
        )

    def run_all(self, headers: dict[str, str], inputs: Any = "hello world") -> dict[str, Any]:
        """Submit one prediction and drive it through every handler to its end."""
        created = self.submit(headers, inputs)
        self.dispatch()
        self.endpoint_succeeds(self.invocations[-1])
        self.complete()
        return self.get(headers, created["id"])


@pytest.fixture
def pipeline(aws: Stack, lambda_context: Any) -> Pipeline:
    line = Pipeline(stack=aws, context=lambda_context, api=TestClient(create_app(), raise_server_exceptions=False))
    line.watch_invocations()
    return line
