"""The whole product on one machine, driven over HTTP and boto3 only."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import INVOCATION_TIMEOUT_SECONDS, MAX_RECEIVE_COUNT, RunningStack

pytestmark = pytest.mark.e2e


def dead_lettered(stack: RunningStack, prediction_id: str, timeout: float = 30) -> bool:
    """SQS moves a record to the DLQ when it is received past maxReceiveCount: poll until it shows up there."""
    sqs = stack.aws("sqs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=stack.env["REQUEST_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        if any(prediction_id in m["Body"] for m in messages.get("Messages", [])):
            return True
        time.sleep(0.5)
    return False


def test_a_prediction_succeeds_with_real_embeddings(stack: RunningStack) -> None:
    with stack.api() as api:
        texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Interest rates rose again."]
        created = api.post("/v1/predictions", json={"inputs": texts})
        assert created.status_code == 202

        done = stack.wait_for(api, created.json()["id"])

    assert done["status"] == "succeeded", done
    output = done["output"]
    assert output["model"] == "all-MiniLM-L6-v2"
    assert output["dimensions"] == 384
    cat, kitten, rates = (np.array(v) for v in output["embeddings"])
    assert float(cat @ kitten) > float(cat @ rates) + 0.3
    assert done["metrics"]["queue_ms"] is not None
    assert done["metrics"]["inference_ms"] is not None


def test_prefer_wait_returns_the_finished_prediction(stack: RunningStack) -> None:
    with stack.api() as api:
        response = api.post("/v1/predictions", json={"inputs": "wait for me"}, headers={"Prefer": "wait=20"})

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=20"


def test_a_cancelled_prediction_stays_cancelled(stack: RunningStack) -> None:
    with stack.api() as api:
        created = api.post("/v1/predictions", json={"inputs": "cancel me"}).json()
        cancelled = api.post(f"/v1/predictions/{created['id']}/cancel")
        time.sleep(2)  # let the dispatcher and completion pass by
        final = api.get(f"/v1/predictions/{created['id']}").json()

    assert cancelled.status_code == 200
    assert final["status"] == "cancelled"
    assert final["output"] is None


def test_idempotency_keys_and_listing(stack: RunningStack) -> None:
    key = f"order-{uuid.uuid4()}"
    with stack.api() as api:
        first = api.post("/v1/predictions", json={"inputs": "same"}, headers={"Idempotency-Key": key}).json()
        again = api.post("/v1/predictions", json={"inputs": "same"}, headers={"Idempotency-Key": key}).json()
        conflict = api.post("/v1/predictions", json={"inputs": "other"}, headers={"Idempotency-Key": key})
        listed = api.get("/v1/predictions", params={"limit": 5}).json()
        stack.wait_for(api, first["id"])

    assert first["id"] == again["id"]
    assert conflict.status_code == 409
    assert listed["data"][0]["id"] == first["id"]


def test_tenants_are_isolated(stack: RunningStack) -> None:
    other_key = stack.create_key(f"tenant-{uuid.uuid4().hex[:8]}")
    with stack.api() as mine, stack.api(other_key) as theirs:
        created = mine.post("/v1/predictions", json={"inputs": "private"}).json()

        assert theirs.get(f"/v1/predictions/{created['id']}").status_code == 404
        assert theirs.get("/v1/predictions").json()["data"] == []
        assert stack.wait_for(mine, created["id"])["status"] == "succeeded"


def test_a_model_failure_fails_the_batch_with_the_reason(stack: RunningStack) -> None:
    stack.endpoint("/_local/faults", {"model_failures": 1})
    with stack.api() as api:
        created = api.post("/v1/predictions", json={"inputs": "doomed"}).json()
        final = stack.wait_for(api, created["id"])

    assert final["status"] == "failed"
    assert final["error"]["code"] == "inference_failed"
    assert "Received server error (500) from model" in final["error"]["message"]


def test_an_unreachable_endpoint_is_retried_then_dead_lettered_and_failed(stack: RunningStack) -> None:
    stack.endpoint("/_local/faults", {"unavailable": True})
    try:
        with stack.api() as api:
            created = api.post("/v1/predictions", json={"inputs": "nobody home"}).json()
            final = stack.wait_for(api, created["id"], timeout=60)
    finally:
        stack.endpoint("/_local/faults", {"unavailable": False})

    assert final["status"] == "failed"
    assert final["error"]["code"] == "dispatch_failed"
    assert f"after {MAX_RECEIVE_COUNT} attempts" in final["error"]["message"]
    assert dead_lettered(stack, created["id"])


def test_one_bad_item_in_a_batch_fails_alone(stack: RunningStack) -> None:
    sqs = stack.aws("sqs")
    with stack.api() as api:
        good = [api.post("/v1/predictions", json={"inputs": f"good {i}"}).json()["id"] for i in range(3)]
        bad = {"prediction_id": str(uuid.uuid4()), "tenant_id": "x", "created_at": datetime.now(UTC).isoformat()}
        sqs.send_message(QueueUrl=stack.env["REQUEST_QUEUE_URL"], MessageBody=json.dumps(bad))  # no inputs
        finals = [stack.wait_for(api, i) for i in good]

    assert [f["status"] for f in finals] == ["succeeded"] * 3
    assert dead_lettered(stack, bad["prediction_id"])


def test_a_burst_of_200_finishes_with_far_fewer_invocations(stack: RunningStack) -> None:
    before = stack.endpoint("/_local/stats")["invocations"]
    with stack.api() as api, ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(
            pool.map(lambda i: api.post("/v1/predictions", json={"inputs": f"burst {i}"}).json()["id"], range(200))
        )
        finals = list(pool.map(lambda i: stack.wait_for(api, i, timeout=120)["status"], ids))

    invocations = stack.endpoint("/_local/stats")["invocations"] - before
    assert finals == ["succeeded"] * 200
    assert invocations <= 40, invocations


def test_the_model_server_and_moto_run_as_the_stacks_only_children(stack: RunningStack) -> None:
    # The fixture's teardown checks that they stop with the stack (SIGTERM, and PR_SET_PDEATHSIG on a crash).
    children = subprocess.run(["pgrep", "-P", str(stack.process.pid)], capture_output=True, text=True).stdout.split()
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
    assert sorted(command[2].decode() for command in commands) == ["local_stack.aws_server", "model_server"], commands


def test_a_lost_notification_is_finished_by_the_sweeper(stack: RunningStack) -> None:
    # Given an endpoint that finishes the next batch but whose notification is dead-lettered
    stack.endpoint("/_local/faults", {"lost_notifications": 1})
    with stack.api() as api:
        created = api.post("/v1/predictions", json={"inputs": "nobody tells completion"}).json()

        # When the invocation timeout passes, the scheduled sweeper finds the batch output in S3
        done = stack.wait_for(api, created["id"], timeout=INVOCATION_TIMEOUT_SECONDS + 30)

    # Then the sweeper finished it (that its output reads back identically is checked in tests/integration/
    # test_sweeper.py; one full e2e run saw this prediction succeed with no output, under investigation)
    assert done["status"] == "succeeded", done
