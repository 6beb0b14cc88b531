"""Shared fixtures: fake AWS credentials, moto resources built from template.yaml, a Lambda context, resets."""

from __future__ import annotations

import os

# Powertools reads these when inference_core.observability is first imported, so set them before any import of it.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "inference-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "InferenceTests")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from inference_core.dal.clients import client
from inference_core.observability import metrics
from local_stack.provision import Stack, provision
from local_stack.pumps import FakeContext
from local_stack.runner import clear_product_caches

REGION = "us-east-1"


reset_caches = clear_product_caches


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "inference-tests")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "InferenceTests")
    monkeypatch.setenv("API_KEY_CACHE_SECONDS", "0")
    reset_caches()
    yield
    metrics.clear_metrics()
    reset_caches()


@dataclass
class AwsCalls:
    """Counts the AWS operations the code under test makes, by 'service.Operation'."""

    counts: dict[str, int]

    def __call__(self, **kwargs: Any) -> None:
        model = kwargs["model"]
        key = f"{model.service_model.service_name}.{model.name}"
        self.counts[key] = self.counts.get(key, 0) + 1

    def of(self, operation: str) -> int:
        return self.counts.get(operation, 0)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto with every table, bucket, queue, topic and subscription of template.yaml, and the env it sets."""
    with mock_aws():
        stack = provision(lambda service: boto3.client(service, region_name=REGION), region=REGION)
        for name, value in stack.env.items():
            monkeypatch.setenv(name, value)
        reset_caches()
        yield stack


@pytest.fixture
def aws_calls(aws: Stack) -> AwsCalls:
    calls = AwsCalls(counts={})
    for service in ("dynamodb", "s3", "sqs", "sagemaker-runtime"):
        client(service).meta.events.register("before-call.*.*", calls)
    return calls


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext("test-function")
