"""A local SageMaker asynchronous endpoint: InvokeEndpointAsync over HTTP, backed by the real model server.

The dispatcher's unchanged boto3 `sagemaker-runtime` client reaches it through the endpoint override. Like
SageMaker it answers 202 at once, queues the request (first come, first served), runs at most
MaxConcurrentInvocationsPerInstance at a time on each of its instances, drops requests older than
RequestTTLSeconds, gives the model InvocationTimeoutSeconds, writes the output (or failure) object to the endpoint
config's S3 paths and publishes the success (or error) notification. It also answers the control plane's
DescribeEndpoint (the `sagemaker` client), with the instances it runs: several "instances" share one model server,
whose batcher takes their invocations together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from local_stack.events import async_notification

log = logging.getLogger("local_stack.sagemaker")


@dataclass
class EndpointConfig:
    """What AWS::SageMaker::EndpointConfig's AsyncInferenceConfig says, resolved from template.yaml."""

    endpoint_name: str
    output_path: str  # s3://bucket/prefix/
    failure_path: str
    success_topic: str
    error_topic: str
    max_concurrent_invocations: int
    model_url: str  # the model server's base URL
    region: str = "us-east-1"
    instances: int = 1  # instances in service (each runs max_concurrent_invocations at once)


@dataclass
class _Invocation:
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str
    accept: str
    ttl_seconds: int
    timeout_seconds: int
    custom_attributes: str = ""  # passed to the container unchanged, as SageMaker does
    received: float = field(default_factory=time.monotonic)


@dataclass
class Faults:
    """Failure injection for end-to-end tests (this emulator's equivalent of moto's /moto-api)."""

    model_failures: int = 0  # the next N invocations fail as if the model broke (500)
    unavailable: bool = False  # InvokeEndpointAsync answers 503 ServiceUnavailable
    lost_notifications: int = 0  # the next N successes write their output but publish nothing (a dead letter)


@dataclass
class EndpointStats:
    invocations: int = 0
    succeeded: int = 0
    failed: int = 0
    texts: int = 0  # texts the model computed in succeeded invocations (bench-cost prices GPU time from it)
    rejected: int = 0
    running: int = 0  # invocations at the model now
    bulk_running: int = 0  # of those, job chunks
    peak_bulk_running: int = 0  # the most job chunks at the model at once so far


def _texts_in(body: bytes) -> int:
    """Texts in a batch input (JSON lines with `inputs`); lines that are not such a record count none."""
    count = 0
    for line in body.splitlines():
        try:
            inputs = json.loads(line).get("inputs")
        except (ValueError, AttributeError):
            continue
        count += len(inputs) if isinstance(inputs, list) else int(bool(inputs))
    return count


def _split(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key


def _aws_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"__type": code, "message": message}, headers={"x-amzn-ErrorType": code}
    )


def create_endpoint_app(config: EndpointConfig, s3: Any, sns: Any) -> FastAPI:
    faults = Faults()
    stats = EndpointStats()
    started_at = time.time()
    queue: asyncio.Queue[_Invocation] = asyncio.Queue()

    async def run(invocation: _Invocation, client: httpx.AsyncClient) -> None:
        waited = time.monotonic() - invocation.received
        if waited > invocation.ttl_seconds:
            await publish_failure(invocation, "Request expired: it waited longer than RequestTTLSeconds")
            return
        try:
            bucket, key = _split(invocation.input_location)
            body = await asyncio.to_thread(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception as exc:  # SageMaker reports any input problem as a failure
            await publish_failure(invocation, f"ClientError: could not read the input: {exc}")
            return
        if faults.model_failures > 0:
            faults.model_failures -= 1
            await publish_failure(
                invocation, 'ClientError: Received server error (500) from model with message "injected failure"'
            )
            return
        try:
            response = await client.post(
                f"{config.model_url}/invocations",
                content=body,
                headers={
                    "Content-Type": invocation.content_type,
                    "Accept": invocation.accept,
                    **(
                        {"X-Amzn-SageMaker-Custom-Attributes": invocation.custom_attributes}
                        if invocation.custom_attributes
                        else {}
                    ),
                },
                timeout=invocation.timeout_seconds,
            )
        except httpx.TimeoutException:
            await publish_failure(invocation, "ModelError: the invocation timed out (InvocationTimeoutSeconds)")
            return
        except httpx.HTTPError as exc:
            await publish_failure(invocation, f"ModelError: the model container is unreachable: {exc}")
            return
        if response.status_code != 200:
            message = response.text[:500]
            status = response.status_code
            await publish_failure(
                invocation,
                f"ClientError: Received {'server' if status >= 500 else 'client'} error ({status}) "
                f'from model with message "{message}"',
            )
            return
        out_bucket, out_key = _split(invocation.output_location)
        await asyncio.to_thread(
            s3.put_object, Bucket=out_bucket, Key=out_key, Body=response.content, ContentType=invocation.accept
        )
        message = async_notification(
            inference_id=invocation.inference_id,
            endpoint_name=config.endpoint_name,
            input_location=invocation.input_location,
            output_location=invocation.output_location,
            region=config.region,
        )
        stats.succeeded += 1
        stats.texts += _texts_in(body)
        if faults.lost_notifications > 0:
            faults.lost_notifications -= 1
            return
        await asyncio.to_thread(sns.publish, TopicArn=config.success_topic, Message=message)

    async def publish_failure(invocation: _Invocation, reason: str) -> None:
        bucket, key = _split(invocation.failure_location)
        await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=key, Body=reason.encode(), ContentType="text/plain")
        message = async_notification(
            inference_id=invocation.inference_id,
            endpoint_name=config.endpoint_name,
            input_location=invocation.input_location,
            failure_location=invocation.failure_location,
            failure_reason=reason,
            region=config.region,
        )
        await asyncio.to_thread(sns.publish, TopicArn=config.error_topic, Message=message)
        stats.failed += 1
        log.warning("invocation %s failed: %s", invocation.inference_id, reason)

    async def worker() -> None:
        async with httpx.AsyncClient() as client:
            while True:
                invocation = await queue.get()
                bulk = "priority=bulk" in invocation.custom_attributes
                stats.running += 1
                stats.bulk_running += bulk
                stats.peak_bulk_running = max(stats.peak_bulk_running, stats.bulk_running)
                try:
                    await run(invocation, client)
                except Exception:
                    log.exception("invocation %s crashed", invocation.inference_id)
                finally:
                    stats.running -= 1
                    stats.bulk_running -= bulk
                    queue.task_done()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        workers = [asyncio.create_task(worker()) for _ in range(config.max_concurrent_invocations * config.instances)]
        yield
        for task in workers:
            task.cancel()

    app = FastAPI(title="Local SageMaker asynchronous endpoint", lifespan=lifespan)

    @app.post("/")
    async def control_plane(request: Request) -> Response:
        """The `sagemaker` API (JSON 1.1): DescribeEndpoint, which the bulk scheduler reads its capacity from."""
        target = request.headers.get("x-amz-target", "")
        document = await request.json()
        if target != "SageMaker.DescribeEndpoint":
            return _aws_error(400, "UnknownOperationException", f"{target} is not emulated here")
        if document.get("EndpointName") != config.endpoint_name:
            return _aws_error(400, "ValidationException", f'Could not find endpoint "{document.get("EndpointName")}".')
        arn = f"arn:aws:sagemaker:{config.region}:123456789012:endpoint/{config.endpoint_name}"
        return JSONResponse(
            {
                "EndpointName": config.endpoint_name,
                "EndpointArn": arn,
                "EndpointConfigName": f"{config.endpoint_name}-config",
                "EndpointStatus": "InService",
                "CreationTime": started_at,
                "LastModifiedTime": started_at,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "CurrentWeight": 1.0,
                        "DesiredWeight": 1.0,
                        "CurrentInstanceCount": config.instances,
                        "DesiredInstanceCount": config.instances,
                    }
                ],
            },
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
            media_type="application/x-amz-json-1.1",
        )

    @app.post("/endpoints/{endpoint_name}/async-invocations")
    async def invoke_endpoint_async(endpoint_name: str, request: Request) -> Response:
        headers = request.headers
        if faults.unavailable:
            stats.rejected += 1
            return _aws_error(503, "ServiceUnavailable", "the endpoint is unavailable (injected)")
        if endpoint_name != config.endpoint_name:
            stats.rejected += 1
            return _aws_error(400, "ValidationError", f"Endpoint {endpoint_name} not found.")
        input_location = headers.get("x-amzn-sagemaker-inputlocation", "")
        if not input_location.startswith("s3://"):
            return _aws_error(400, "ValidationError", "InputLocation must be an s3:// URI")
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        # As SageMaker: the output is named by the request's Filename when it gives one, else a generated name.
        filename = headers.get("x-amzn-sagemaker-filename") or f"{uuid.uuid4()}.out"
        stem = filename.removesuffix(".out")
        invocation = _Invocation(
            inference_id=inference_id,
            input_location=input_location,
            output_location=f"{config.output_path.rstrip('/')}/{filename}",
            failure_location=f"{config.failure_path.rstrip('/')}/{stem}-error.out",
            content_type=headers.get("x-amzn-sagemaker-content-type", "application/octet-stream"),
            accept=headers.get("x-amzn-sagemaker-accept", "application/jsonlines"),
            ttl_seconds=int(headers.get("x-amzn-sagemaker-requestttlseconds", "21600")),
            timeout_seconds=int(headers.get("x-amzn-sagemaker-invocationtimeoutseconds", "900")),
            custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes", ""),
        )
        stats.invocations += 1
        await queue.put(invocation)
        return JSONResponse(
            status_code=202,
            content={"InferenceId": inference_id},
            headers={
                "X-Amzn-SageMaker-OutputLocation": invocation.output_location,
                "X-Amzn-SageMaker-FailureLocation": invocation.failure_location,
            },
        )

    @app.get("/_local/stats")
    def get_stats() -> dict[str, Any]:
        return {**stats.__dict__, "queued": queue.qsize(), "instances": config.instances}

    @app.post("/_local/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        document = await request.json()
        faults.model_failures = int(document.get("model_failures", faults.model_failures))
        faults.unavailable = bool(document.get("unavailable", faults.unavailable))
        faults.lost_notifications = int(document.get("lost_notifications", faults.lost_notifications))
        return faults.__dict__

    return app
