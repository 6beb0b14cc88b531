"""The bulk gate follows the endpoint's instances in service (DescribeEndpoint over moto), and the bulk backlog is
published for the scaling policy."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from inference_core.dal.jobs import job_store
from inference_core.logic import capacity
from inference_core.settings import get_settings
from tests.integration.conftest import REGION, Pipeline
from tests.integration.test_jobs import JobDriver, create_job, good_lines, jsonl, upload

pytestmark = pytest.mark.usefixtures("aws")


def deploy_endpoint(instances: int) -> None:
    """What the stack's Endpoint resource would be, with `instances` in service (moto knows no autoscaling)."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    name = get_settings().endpoint_name
    sagemaker.create_model(
        ModelName="embeddings",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/embeddings:latest"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
    )
    variants: Any = [
        {
            "VariantName": "AllTraffic",
            "ModelName": "embeddings",
            "InstanceType": "ml.g4dn.xlarge",
            "InitialInstanceCount": instances,
        }
    ]
    sagemaker.create_endpoint_config(EndpointConfigName="embeddings-config", ProductionVariants=variants)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="embeddings-config")


def test_the_gate_opens_to_every_instances_worth_of_chunks(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    monkeypatch.setenv("MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE", "4")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "64")
    get_settings.cache_clear()
    deploy_endpoint(instances=3)
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    first = create_job(pipeline, headers)
    upload(first, jsonl(good_lines(40)))
    driver.intake()

    assert capacity.instances_in_service() == 3
    # 3 instances x (4 concurrent invocations - 1 kept for interactive batches); one job holds all places but one.
    assert len(pipeline.invocations) == 8
    other = pipeline.headers("other-tenant")
    second = create_job(pipeline, other)
    upload(second, jsonl(good_lines(40)))
    driver.intake()
    assert len(pipeline.invocations) == 9  # the place left free goes to the job that arrived
    assert job_store().in_flight() == 9

    driver.run()
    for job, tenant in ((first, headers), (second, other)):
        done = pipeline.api.get(f"/v1/jobs/{job['id']}", headers=tenant).json()
        assert done["status"] == "completed"
        assert done["request_counts"] == {"total": 40, "completed": 40, "failed": 0}
    assert job_store().in_flight() == 0


def test_with_capacity_unknown_the_gate_is_one_instances_worth(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    monkeypatch.setenv("MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE", "4")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "64")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(10)))

    JobDriver(pipeline).intake()  # no endpoint to describe: DescribeEndpoint fails

    assert capacity.instances_in_service() == 1
    assert len(pipeline.invocations) == 2  # 3 places, one job: all but one


def test_the_instances_are_read_once_per_interval(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy_endpoint(instances=2)
    calls: list[str] = []
    monkeypatch.setattr(
        "inference_core.dal.endpoint.sagemaker",
        lambda: _Counting(boto3.client("sagemaker", region_name=REGION), calls),
    )
    for _ in range(5):
        assert capacity.instances_in_service() == 2
    assert calls == ["describe_endpoint"]  # the reading is kept for endpoint_capacity_seconds


class _Counting:
    def __init__(self, client: Any, calls: list[str]) -> None:
        self.client, self.calls = client, calls

    def describe_endpoint(self, **kwargs: Any) -> Any:
        self.calls.append("describe_endpoint")
        return self.client.describe_endpoint(**kwargs)


def test_the_bulk_backlog_is_published_per_job_and_in_all(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "1")
    get_settings.cache_clear()
    deploy_endpoint(instances=2)
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(5)))
    capsys.readouterr()

    JobDriver(pipeline).intake()

    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    total = [d for d in documents if "BulkChunksWaiting" in d and "job_id" not in d]
    per_job = [d for d in documents if "BulkChunksWaiting" in d and d.get("job_id") == job["id"]]
    assert total[-1]["BulkChunksWaiting"] == [4.0]  # 5 chunks, one at the endpoint
    assert per_job[-1]["BulkChunksWaiting"] == [4.0]
    seconds = 4 / get_settings().endpoint_items_per_second / 2  # 4 one-text chunks, 2 instances
    assert total[-1]["BulkBacklogSecondsPerInstance"] == [round(seconds, 1)]
    assert total[-1]["EndpointInstancesInService"] == [2.0]
