"""Lazily created, cached boto3 clients with explicit timeouts and retries."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from inference_core.settings import get_settings

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)
# InvokeEndpointAsync only enqueues; throttling must surface quickly so SQS can retry the records.
_SAGEMAKER_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str) -> Any:
    settings = get_settings()
    if service == "sagemaker-runtime":
        endpoint_url = settings.sagemaker_runtime_endpoint_url or settings.aws_endpoint_url
        return boto3.client(
            service, region_name=settings.aws_region, endpoint_url=endpoint_url, config=_SAGEMAKER_CONFIG
        )
    return boto3.client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=_CONFIG
    )


def reset_clients() -> None:
    """Forget cached clients (tests swap credentials and endpoints between cases)."""
    client.cache_clear()
