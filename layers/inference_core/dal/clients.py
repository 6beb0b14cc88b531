"""Lazily created, cached boto3 clients with explicit timeouts and retries, and the registry of cached factories."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

from inference_core.settings import get_settings

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_s3 import S3Client
    from types_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from types_boto3_sqs import SQSClient

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)
# SigV4 presigned URLs (upload links sign the key and Content-Type; SigV2 is refused in newer regions).
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4"))
# InvokeEndpointAsync only enqueues; throttling must surface quickly so SQS can retry the records.
_SAGEMAKER_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)

T = TypeVar("T")
_factories: list[Callable[[], None]] = []


def cached_factory(build: Callable[[], T]) -> Callable[[], T]:
    """A store or client factory built once per process and forgotten by `reset_clients`."""
    cached = cache(build)
    _factories.append(cached.cache_clear)
    return cached


@cache
def client(service: str) -> Any:
    settings = get_settings()
    if service in ("sagemaker-runtime", "sagemaker"):
        # Locally one emulator answers both the runtime (InvokeEndpointAsync) and DescribeEndpoint.
        endpoint_url = settings.sagemaker_runtime_endpoint_url or settings.aws_endpoint_url
        return boto3.client(
            service, region_name=settings.aws_region, endpoint_url=endpoint_url, config=_SAGEMAKER_CONFIG
        )
    config = _S3_CONFIG if service == "s3" else _CONFIG
    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=config)


def dynamodb() -> DynamoDBClient:
    ddb: DynamoDBClient = client("dynamodb")
    return ddb


def s3() -> S3Client:
    s3_client: S3Client = client("s3")
    return s3_client


def sqs() -> SQSClient:
    sqs_client: SQSClient = client("sqs")
    return sqs_client


def sagemaker_runtime() -> SageMakerRuntimeClient:
    runtime: SageMakerRuntimeClient = client("sagemaker-runtime")
    return runtime


def sagemaker() -> Any:
    """The control plane (DescribeEndpoint only); untyped: its stubs are not worth a cold-start dependency."""
    return client("sagemaker")


def reset_clients() -> None:
    """Forget cached clients and stores (tests swap credentials and endpoints between cases)."""
    client.cache_clear()
    for clear in _factories:
        clear()
