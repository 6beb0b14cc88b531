"""Bulk jobs on the local stack, as a user drives them: the presigned upload and the inbox, over HTTP and boto3,
through the real model server."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
TERMINAL = {"completed", "failed", "cancelled", "expired", "validated"}


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def fetch_lines(url: str) -> list[dict[str, Any]]:
    response = httpx.get(url)
    response.raise_for_status()
    return [json.loads(line) for line in response.content.splitlines() if line]


def test_a_file_uploaded_through_the_api_comes_back_as_result_files(stack: RunningStack) -> None:
    key = stack.create_key(f"jobs-{uuid.uuid4().hex[:8]}")
    with stack.api(key) as api:
        job = api.post("/v1/jobs", json={"metadata": {"source": "e2e"}}).json()
        upload = job["upload"]
        lines = [
            {"custom_id": "a", "inputs": "A cat sleeps on the sofa."},
            {"custom_id": "b", "inputs": ["A kitten naps on the couch.", "Stocks fell."]},
            b"this is not json",
            {"custom_id": "a", "inputs": "duplicate id"},
            {"custom_id": "c", "inputs": "base64 please", "parameters": {"encoding_format": "base64"}},
        ]
        put = httpx.put(upload["url"], content=jsonl(lines), headers=upload["headers"])
        assert put.status_code == 200, put.text

        done = wait_job(api, job["id"])

    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    outputs = fetch_lines(done["output_url"])
    assert [(o["custom_id"], o["line"]) for o in outputs] == [("a", 1), ("b", 2), ("c", 5)]
    assert len(outputs[1]["output"]["embeddings"]) == 2
    assert len(outputs[0]["output"]["embeddings"][0]) == 384  # the real model
    assert isinstance(outputs[2]["output"]["embeddings"][0], str)
    errors = fetch_lines(done["error_url"])
    assert [(e["line"], e["error"]["code"]) for e in errors] == [(3, "invalid_json"), (4, "duplicate_custom_id")]


def test_a_file_dropped_in_the_inbox_lands_in_the_outbox(stack: RunningStack) -> None:
    tenant = f"pipeline-{uuid.uuid4().hex[:8]}"
    stack.create_key(tenant)
    s3 = stack.aws("s3")
    bucket = stack.env["BUCKET_NAME"]
    body = jsonl([{"custom_id": f"row-{i}", "inputs": f"sentence number {i}"} for i in range(20)])
    s3.put_object(Bucket=bucket, Key=f"inbox/{tenant}/daily/2026-11-23.jsonl", Body=body)

    manifest_key = f"outbox/{tenant}/daily/2026-11-23.manifest.json"
    deadline = time.monotonic() + 120
    manifest = None
    while manifest is None and time.monotonic() < deadline:
        try:
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            time.sleep(0.5)
    assert manifest is not None, "no manifest in the outbox"
    assert manifest["status"] == "completed"
    assert manifest["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
    output = s3.get_object(Bucket=bucket, Key=f"outbox/{tenant}/daily/2026-11-23.output.jsonl")["Body"].read()
    assert [json.loads(line)["custom_id"] for line in output.splitlines()] == [f"row-{i}" for i in range(20)]


def test_a_dry_run_estimates_without_running(stack: RunningStack) -> None:
    key = stack.create_key(f"jobs-{uuid.uuid4().hex[:8]}")
    with stack.api(key) as api:
        job = api.post("/v1/jobs", json={"dry_run": True}).json()
        lines = [{"custom_id": str(i), "inputs": "some words to count"} for i in range(10)]
        httpx.put(job["upload"]["url"], content=jsonl(lines), headers=job["upload"]["headers"]).raise_for_status()
        checked = wait_job(api, job["id"])
    assert checked["status"] == "validated"
    assert checked["request_counts"] == {"total": 10, "completed": 0, "failed": 0}
    assert checked["estimate"]["inputs"] == 10
    assert checked["output_url"] is None
