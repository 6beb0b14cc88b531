"""The gate follows the endpoint's instances: a local endpoint of two instances takes two instances' worth of a
job's chunks at once (each instance keeps one slot for interactive batches)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import httpx
import pytest

from local_stack.template import load_template
from tests.e2e.conftest import RunningStack, start_stack
from tests.e2e.test_bulk_jobs_local import jsonl, wait_job

pytestmark = pytest.mark.e2e
INSTANCES = 2
CHUNK_INPUTS = 128


@pytest.fixture(scope="module")
def two_instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state = tmp_path_factory.mktemp("local-stack-two-instances")
    yield from start_stack(state, "--instances", str(INSTANCES), "--param", f"JobChunkMaxInputs={CHUNK_INPUTS}")


def test_the_gate_opens_to_every_instance_in_service(two_instances: RunningStack) -> None:
    stack = two_instances
    template = load_template()
    per_instance = int(template["Parameters"]["MaxConcurrentInvocationsPerInstance"]["Default"])
    one_instance, all_instances = per_instance - 1, INSTANCES * (per_instance - 1)
    sagemaker = boto3.client(  # the control plane is the local endpoint too, as the functions see it
        "sagemaker",
        region_name=stack.env["AWS_REGION"],
        endpoint_url=stack.env["LOCAL_SAGEMAKER_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    described = sagemaker.describe_endpoint(EndpointName=template["Parameters"]["EndpointName"]["Default"])
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == INSTANCES
    assert stack.endpoint("/_local/stats")["peak_bulk_running"] == 0

    lines = [{"custom_id": f"l{n}", "inputs": f"line {n}: a short text about scaling out"} for n in range(2048)]
    key = stack.create_key(f"scale-{uuid.uuid4().hex[:8]}")
    with stack.api(key) as api:
        job = api.post("/v1/jobs", json={}).json()
        put = httpx.put(job["upload"]["url"], content=jsonl(lines), headers=job["upload"]["headers"])
        assert put.status_code == 200, put.text
        done = wait_job(api, job["id"], timeout=240)

    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 2048, "completed": 2048, "failed": 0}
    peak = stack.endpoint("/_local/stats")["peak_bulk_running"]
    # More than one instance could take, never more than both leave free of their interactive slots.
    assert one_instance < peak <= all_instances, peak
