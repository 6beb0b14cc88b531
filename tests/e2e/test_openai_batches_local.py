"""Files and batches on the local stack with the real `openai` SDK: upload, batch, poll, download the output and
error files, cancel, page, and every refusal as the SDK's exception classes."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai.types import Batch

from tests.e2e.conftest import RunningStack
from tests.e2e.test_openai_local import MODEL, native_vectors, sdk

pytestmark = pytest.mark.e2e


def request(custom_id: str, body: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings"}
    return {**line, "body": body if body is not None else {"model": MODEL, "input": f"text {custom_id}"}, **envelope}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def finished(client: openai.OpenAI, batch_id: str, timeout: float = 180) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in {"completed", "failed", "expired", "cancelled"} or time.monotonic() > deadline:
            return batch
        time.sleep(0.5)


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line]


def test_a_batch_file_of_good_and_bad_lines_runs_to_its_output_and_error_files(stack: RunningStack) -> None:
    client = sdk(stack)
    texts = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Interest rates rose again."]
    lines = [
        request("float", {"model": MODEL, "input": texts[0], "encoding_format": "float"}),
        request("base64", {"model": MODEL, "input": texts[1:], "encoding_format": "base64"}),
        request("empty", {"model": MODEL, "input": ""}),
        request("gpt", {"model": "text-embedding-3-small", "input": "x"}),
        request("short", {"model": MODEL, "input": "x", "dimensions": 64}),
    ]
    uploaded = client.files.create(file=("batch.jsonl", jsonl(lines)), purpose="batch")

    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h", metadata={"run": "e2e"}
    )
    done = finished(client, batch.id)

    assert uploaded.purpose == "batch"
    assert uploaded.bytes == len(jsonl(lines))
    assert batch.status == "validating"
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (5, 2, 3)
    assert done.metadata == {"run": "e2e"}
    assert done.in_progress_at
    assert done.finalizing_at
    assert done.completed_at
    outputs = {line["custom_id"]: line for line in lines_of(client, done.output_file_id)}
    errors = {line["custom_id"]: line for line in lines_of(client, done.error_file_id)}
    assert set(outputs) == {"float", "base64"}
    assert set(errors) == {"empty", "gpt", "short"}
    expected = native_vectors(stack, texts)
    as_float = outputs["float"]["response"]["body"]["data"][0]["embedding"]
    as_base64 = [
        np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        for item in outputs["base64"]["response"]["body"]["data"]
    ]
    np.testing.assert_allclose(np.array([as_float, *as_base64]), expected, atol=1e-6)
    assert {k: v["response"]["status_code"] for k, v in errors.items()} == {"empty": 400, "gpt": 404, "short": 400}
    assert client.files.retrieve(done.output_file_id or "").purpose == "batch_output"


def test_a_cancelled_batch_ends_cancelled_with_every_line_accounted_for(stack: RunningStack) -> None:
    client = sdk(stack)
    uploaded = client.files.create(file=("big.jsonl", jsonl([request(f"r{n}") for n in range(600)])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")

    cancelling = client.batches.cancel(batch.id)
    done = finished(client, batch.id)

    assert cancelling.status in {"cancelling", "cancelled"}
    assert done.status == "cancelled", done
    assert done.cancelled_at is not None
    assert done.request_counts is not None
    counts = done.request_counts
    assert counts.completed + counts.failed == counts.total == 600
    ran = lines_of(client, done.output_file_id) if done.output_file_id else []
    never = lines_of(client, done.error_file_id) if done.error_file_id else []
    assert sorted(line["custom_id"] for line in ran + never) == sorted(f"r{n}" for n in range(600))
    assert {line["error"]["code"] for line in never} <= {"batch_cancelled"}


def test_a_completed_batch_cannot_be_cancelled(stack: RunningStack) -> None:
    client = sdk(stack)
    uploaded = client.files.create(file=("one.jsonl", jsonl([request("one")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert finished(client, batch.id).status == "completed"

    with pytest.raises(openai.ConflictError) as refused:
        client.batches.cancel(batch.id)  # x-should-retry: false, so the SDK does not retry the 409

    assert refused.value.status_code == 409


def test_batches_and_files_page_as_the_sdk_pages_them(stack: RunningStack) -> None:
    client = sdk(stack, key=stack.create_key(f"pages-{uuid.uuid4().hex[:8]}"))
    uploaded = client.files.create(file=("p.jsonl", jsonl([request("p")])), purpose="batch")
    made = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h").id
        for _ in range(3)
    ]

    first = client.batches.list(limit=2)
    every = [batch.id for batch in client.batches.list(limit=1)]  # the SDK follows `after` page by page

    assert [b.id for b in first.data] == made[::-1][:2]
    assert first.has_more is True
    assert every == made[::-1]
    assert [f.id for f in client.files.list()] == [uploaded.id]


def test_refusals_are_the_sdks_exception_classes_and_leave_nothing(stack: RunningStack) -> None:
    key = stack.create_key(f"refusals-{uuid.uuid4().hex[:8]}")
    client = sdk(stack, key=key, max_retries=0)
    other = sdk(stack)
    theirs = other.files.create(file=("t.jsonl", jsonl([request("t")])), purpose="batch")

    refusals: dict[str, tuple[type[openai.APIStatusError], Any]] = {
        "bad key": (openai.AuthenticationError, lambda: sdk(stack, key="nope", max_retries=0).files.list()),
        "wrong url": (
            openai.BadRequestError,
            lambda: client.files.create(
                file=("u.jsonl", jsonl([request("a", url="/v1/completions")])), purpose="batch"
            ),
        ),
        "wrong method": (
            openai.BadRequestError,
            lambda: client.files.create(file=("m.jsonl", jsonl([request("a", method="PUT")])), purpose="batch"),
        ),
        "duplicate custom_id": (
            openai.BadRequestError,
            lambda: client.files.create(file=("d.jsonl", jsonl([request("a"), request("a")])), purpose="batch"),
        ),
        "empty file": (openai.BadRequestError, lambda: client.files.create(file=("e.jsonl", b""), purpose="batch")),
        "other purpose": (
            openai.BadRequestError,
            lambda: client.files.create(file=("f.jsonl", jsonl([request("a")])), purpose="fine-tune"),
        ),
        "other tenant's file": (
            openai.NotFoundError,
            lambda: client.batches.create(input_file_id=theirs.id, endpoint="/v1/embeddings", completion_window="24h"),
        ),
        "other tenant's file content": (openai.NotFoundError, lambda: client.files.content(theirs.id)),
        "unknown batch": (openai.NotFoundError, lambda: client.batches.retrieve("batch_" + "0" * 32)),
    }

    for name, (expected, call) in refusals.items():
        with pytest.raises(expected) as refused:
            call()
        assert set(refused.value.body or {}) == {"message", "type", "param", "code"}, name  # type: ignore[arg-type]
        assert refused.value.request_id, name
    assert list(client.files.list()) == []
    assert list(client.batches.list()) == []
    assert other.files.retrieve(theirs.id).id == theirs.id  # untouched


def test_multipart_without_a_file_and_bodies_that_are_not_json_are_400(stack: RunningStack) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    url = stack.env["API_URL"]

    no_file = httpx.post(f"{url}/v1/files", data={"purpose": "batch"}, headers=headers)
    not_json = httpx.post(
        f"{url}/v1/batches", content=b"{oops", headers={**headers, "Content-Type": "application/json"}
    )

    for response in (no_file, not_json):
        assert response.status_code == 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert response.headers["x-should-retry"] == "false"
