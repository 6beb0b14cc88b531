"""`client.jobs` against the fake API: the upload, retries, waiting, downloads with expiring links, strict parsing."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_client import (
    ConflictError,
    InvalidInputError,
    Job,
    JobError,
    JobSource,
    JobStatus,
    NotFoundError,
    PermissionDeniedError,
    ResponseFormatError,
    WaitTimeoutError,
)
from inference_client import _base as base

from tests.client.conftest import API_KEY, OUTPUT_HOST, error, vector

LINES = [
    {"custom_id": "a", "inputs": "A cat sleeps on the sofa."},
    {"custom_id": "b", "inputs": "Stocks fell."},
    "this is not json",
    {"custom_id": "c", "inputs": "A kitten naps on the couch."},
]


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in LINES))
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def passthrough(_request: httpx.Request) -> None:
    """A scripted step that lets the request through to the fake API."""


def test_create_uploads_the_file_to_the_link_with_its_headers_and_no_api_key(
    api, make_client, jsonl, monkeypatch
) -> None:
    monkeypatch.setattr(base, "UPLOAD_BLOCK_BYTES", 64)  # several blocks, so the progress moves
    sent: list[tuple[int, int]] = []
    with make_client() as client:
        job = client.jobs.create(
            jsonl, metadata={"run": "nightly"}, progress=lambda done, total: sent.append((done, total))
        )

    (create,) = api.api_requests("POST", "/v1/jobs")
    assert json.loads(create.content) == {"metadata": {"run": "nightly"}}
    assert create.headers["idempotency-key"].startswith("ic-")
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    (put,) = api.link_requests("PUT")
    assert put.url.path == f"/uploads/{job.id}.jsonl"
    assert put.headers["content-type"] == "application/jsonl"
    assert put.headers["content-length"] == str(jsonl.stat().st_size)
    assert "authorization" not in put.headers
    assert "transfer-encoding" not in put.headers  # S3 refuses a chunked PUT
    assert put.content == jsonl.read_bytes()
    size = jsonl.stat().st_size
    assert sent[0] == (0, size)
    assert sent[-1] == (size, size)
    assert len(sent) == 1 + -(-size // 64)
    # The job as read after the upload (the reply to the POST is awaiting_upload, with the link).
    assert api.requests[-1].method == "GET"
    assert job.status == JobStatus.IN_PROGRESS
    assert job.upload is None
    assert job.metadata == {"run": "nightly"}
    assert job.source is JobSource.API


def test_retries_keep_one_idempotency_key_and_resend_the_whole_file(api, clock, make_client, jsonl) -> None:
    api.script = [
        error(503, "unavailable", "busy"),  # POST 1
        httpx.ConnectError("refused"),  # POST 2
        passthrough,  # POST 3 creates the job
        httpx.Response(500, content=b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"),
        httpx.WriteError("connection reset while sending"),  # PUT 2
        passthrough,  # PUT 3
    ]
    starts: list[int] = []
    with make_client() as client:
        job = client.jobs.create(jsonl, progress=lambda done, _total: starts.append(done) if done == 0 else None)

    creates = api.api_requests("POST", "/v1/jobs")
    assert len(creates) == 3
    assert len({r.headers["idempotency-key"] for r in creates}) == 1
    assert {r.content for r in creates} == {creates[0].content}
    assert len(api.jobs) == 1
    puts = api.link_requests("PUT")
    assert len(puts) == 3
    assert puts[-1].content == jsonl.read_bytes()
    assert api.uploads[job.id] == jsonl.read_bytes()
    assert starts == [0, 0, 0]  # each attempt reads the file again from the start
    assert len(clock.sleeps) == 4


def test_a_retry_after_a_lost_reply_uploads_to_the_job_the_first_attempt_created(api, make_client, jsonl) -> None:
    def lose_reply(request: httpx.Request) -> httpx.Response:
        api._jobs(request)  # the job is created, the reply never arrives
        raise httpx.ReadTimeout("timed out")

    def lose_retry_reply(request: httpx.Request) -> httpx.Response:
        api._jobs(request)
        raise httpx.RemoteProtocolError("server disconnected")

    api.script = [lose_reply]
    with make_client() as client:
        job = client.jobs.create(jsonl)
        finished = client.jobs.wait(job)
        api.script = [lose_retry_reply]
        child = client.jobs.retry(finished.id)

    assert len(api.api_requests("POST", "/v1/jobs")) == 2
    assert [j["source"] for j in api.jobs.values()] == ["api", "retry"]  # one job each, though each POST went twice
    assert list(api.uploads) == [job.id]
    assert child.parent_id == job.id


def test_an_upload_link_that_refuses_the_file_is_not_retried(api, make_client, jsonl) -> None:
    api.script = [
        passthrough,
        httpx.Response(403, content=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"),
    ]
    with make_client() as client, pytest.raises(PermissionDeniedError) as raised:
        client.jobs.create(jsonl)
    assert str(raised.value) == "Request has expired (HTTP 403, AccessDenied)"
    assert len(api.link_requests("PUT")) == 1


def test_an_empty_file_creates_nothing(api, make_client, tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with make_client() as client:
        with pytest.raises(InvalidInputError, match="empty"):
            client.jobs.create(empty)
        with pytest.raises(FileNotFoundError):
            client.jobs.create(tmp_path / "missing.jsonl")
    assert api.requests == []


def test_wait_polls_with_backoff_until_terminal_and_reports_each_poll(api, clock, make_client, jsonl) -> None:
    api.job_polls = 4
    seen: list[Job] = []
    with make_client() as client:
        job = client.jobs.create(jsonl)
        done = client.jobs.wait(job, progress=seen.append)

    assert done.status == JobStatus.COMPLETED
    assert done.is_terminal
    assert done.request_counts.total == 4
    assert (done.request_counts.completed, done.request_counts.failed) == (3, 1)
    assert [j.request_counts.processed for j in seen] == [0, 1, 2, 3, 4]  # first seen, then after each poll
    assert [j.status for j in seen][-1] == JobStatus.COMPLETED
    assert seen[1].progress.items_per_second == 2.5
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert done.errors[0].line == 3
    assert done.errors[0].error.code == "invalid_json"


def test_wait_gives_up_after_the_timeout(api, make_client, jsonl) -> None:
    api.job_polls = 1000
    with make_client() as client:
        job = client.jobs.create(jsonl)
        with pytest.raises(WaitTimeoutError, match=r"^job job_[0-9a-f]+ still in_progress after 3s$") as raised:
            client.jobs.wait(job, timeout=3)
    assert raised.value.kind == "job"


def test_download_renews_an_expired_link_once(api, make_client, jsonl, tmp_path) -> None:
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    with make_client() as client:
        job = client.jobs.wait(client.jobs.create(jsonl))
        api.expired_job_links = 1  # the output link expired while the caller held the job
        gets_before = len(api.api_requests("GET", f"/v1/jobs/{job.id}"))
        files = client.jobs.download(job, output=output, errors=errors)

    assert (files.output, files.errors) == (output, errors)
    assert len(api.api_requests("GET", f"/v1/jobs/{job.id}")) == gets_before + 1  # read once for fresh links
    assert all("authorization" not in r.headers for r in api.link_requests("GET"))
    records = read_lines(output)
    assert [(r["custom_id"], r["line"]) for r in records] == [("a", 1), ("b", 2), ("c", 4)]
    assert records[0]["output"]["embeddings"] == [vector("A cat sleeps on the sofa.")]
    assert [(r["line"], r["error"]["code"]) for r in read_lines(errors)] == [(3, "invalid_json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["err.jsonl", "out.jsonl", "texts.jsonl"]  # no .part


def test_a_link_refused_again_after_renewal_is_raised_and_leaves_no_file(api, make_client, jsonl, tmp_path) -> None:
    output = tmp_path / "out.jsonl"
    with make_client() as client:
        job = client.jobs.wait(client.jobs.create(jsonl))
        api.expired_job_links = 2
        with pytest.raises(PermissionDeniedError, match="Request has expired"):
            client.jobs.download(job.id, output=output)
    assert not output.exists()
    assert not (tmp_path / "out.jsonl.part").exists()


def test_a_download_cut_short_is_retried_from_the_start(api, make_client, jsonl, tmp_path) -> None:
    output = tmp_path / "out.jsonl"
    with make_client() as client:
        job = client.jobs.wait(client.jobs.create(jsonl))
        api.script = [httpx.ReadError("connection reset"), passthrough]
        client.jobs.download(job, output=output)
    assert output.read_bytes() == api.job_files[f"{job.id}/output.jsonl"]


def test_download_of_a_job_that_has_not_finished_is_a_job_error(api, make_client, jsonl, tmp_path) -> None:
    api.job_polls = 1000
    with make_client() as client:
        job = client.jobs.create(jsonl)
        with pytest.raises(JobError, match="in_progress: its result files are not written yet") as raised:
            client.jobs.download(job, output=tmp_path / "out.jsonl")
    assert raised.value.job.id == job.id
    assert api.link_requests("GET") == []


def test_list_iterate_cancel_and_retry(api, make_client, jsonl) -> None:
    with make_client() as client:
        first = client.jobs.wait(client.jobs.create(jsonl))
        running = client.jobs.create(jsonl)
        waiting = api.add_job()["id"]

        page = client.jobs.list(limit=2)
        assert [j.id for j in page.data] == [waiting, running.id]
        assert page.next_cursor is not None
        assert [j.id for j in client.jobs.iterate(page_size=1)] == [waiting, running.id, first.id]

        assert client.jobs.cancel(waiting).status == JobStatus.CANCELLED
        assert client.jobs.cancel(running.id).status == JobStatus.CANCELLING
        assert client.jobs.wait(running.id).status == JobStatus.CANCELLED
        with pytest.raises(ConflictError):
            client.jobs.cancel(first.id)

        child = client.jobs.retry(first.id)
        assert (child.source, child.parent_id, child.status) == (JobSource.RETRY, first.id, JobStatus.VALIDATING)
        with pytest.raises(ConflictError, match="no failed lines"):
            client.jobs.retry(child.id)
        with pytest.raises(NotFoundError):
            client.jobs.get("job_" + "0" * 32)
    cancels = api.api_requests("POST")
    assert all("idempotency-key" in r.headers for r in cancels)


def test_a_job_is_read_into_typed_fields(api, make_client, tmp_path) -> None:
    source = tmp_path / "dry.jsonl"
    source.write_text(json.dumps({"custom_id": "a", "inputs": "x"}) + "\n")
    with make_client() as client:
        job = client.jobs.wait(client.jobs.create(source, dry_run=True))
    assert json.loads(api.api_requests("POST", "/v1/jobs")[0].content) == {"dry_run": True}
    assert job.status == JobStatus.VALIDATED
    assert job.is_terminal
    assert job.dry_run
    assert isinstance(job.created_at, datetime)
    assert job.created_at.tzinfo is not None
    assert job.estimate is not None
    assert (job.estimate.inputs, job.estimate.eta_seconds) == (1, 2.0)
    assert job.output_url is None
    assert job.to_dict()["id"] == job.id
    assert "X-Amz-Signature" not in repr(job)


def good_job() -> dict[str, Any]:
    return {
        "id": "job_" + "a" * 32,
        "status": "in_progress",
        "created_at": "2026-11-23T11:23:24.760Z",
        "started_at": None,
        "completed_at": None,
        "request_counts": {"total": 4, "completed": 1, "failed": 0},
        "progress": {"fraction": 0.25, "items_per_second": 1, "eta_seconds": None},
        "output_url": None,
        "error_url": None,
        "errors": [],
        "error": None,
        "metadata": {},
        "source": "api",
        "input_location": None,
        "parent_id": None,
        "dry_run": False,
        "estimate": None,
        "upload": None,
    }


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"status": "paused"}, id="unknown-status"),
        pytest.param({"created_at": None}, id="no-created-at"),
        pytest.param({"created_at": "yesterday"}, id="bad-timestamp"),
        pytest.param({"request_counts": {"total": "4", "completed": 1, "failed": 0}}, id="count-as-string"),
        pytest.param({"request_counts": {"total": 4, "completed": True, "failed": 0}}, id="count-as-bool"),
        pytest.param({"request_counts": None}, id="no-counts"),
        pytest.param({"progress": {"fraction": "a quarter"}}, id="bad-fraction"),
        pytest.param({"errors": {"line": 3}}, id="errors-not-a-list"),
        pytest.param({"errors": [{"line": 3, "custom_id": None}]}, id="line-error-without-error"),
        pytest.param({"metadata": {"k": 1}}, id="metadata-not-strings"),
        pytest.param({"source": "ftp"}, id="unknown-source"),
        pytest.param({"dry_run": "no"}, id="dry-run-not-bool"),
        pytest.param({"output_url": 42}, id="url-not-string"),
        pytest.param({"estimate": {"inputs": 1}}, id="short-estimate"),
        pytest.param({"upload": {"url": "u", "method": "PUT", "headers": {}, "expires_at": None}}, id="bad-upload"),
        pytest.param({"id": None}, id="no-id"),
    ],
)
def test_a_malformed_job_is_a_response_format_error(api, make_client, change) -> None:
    assert Job.from_api(good_job()).progress.items_per_second == 1.0  # the base is valid
    api.script = [httpx.Response(200, json={**good_job(), **change})]
    with make_client() as client, pytest.raises(ResponseFormatError, match="job"):
        client.jobs.get("job_" + "a" * 32)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'{"data": [{"id": "x"}], "next_cursor": null}', id="bad-item"),
        pytest.param(b'{"data": [], "next_cursor": 3}', id="bad-cursor"),
    ],
)
def test_a_malformed_job_list_is_a_response_format_error(api, make_client, body) -> None:
    api.script = [httpx.Response(200, content=body)]
    with make_client() as client, pytest.raises(ResponseFormatError):
        client.jobs.list()


def test_the_async_client_creates_waits_and_downloads(api, make_async_client, jsonl, tmp_path) -> None:
    output, errors = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    progress: list[int] = []

    async def run() -> Job:
        async with make_async_client() as client:
            job = await client.jobs.create(jsonl, progress=lambda done, _total: progress.append(done))
            job = await client.jobs.wait(job, progress=lambda j: None)
            api.expired_job_links = 1
            files = await client.jobs.download(job, output=output, errors=errors)
            assert (files.output, files.errors) == (output, errors)
            listed = [j.id async for j in client.jobs.iterate(page_size=1)]
            assert listed == [job.id]
            return job

    job = asyncio.run(run())
    (put,) = api.link_requests("PUT")
    assert put.headers["content-type"] == "application/jsonl"
    assert "authorization" not in put.headers
    assert put.content == jsonl.read_bytes()
    assert progress[0] == 0
    assert progress[-1] == jsonl.stat().st_size
    assert job.status == JobStatus.COMPLETED
    assert len(read_lines(output)) == 3
    assert len(read_lines(errors)) == 1
    assert all(r.url.host == OUTPUT_HOST for r in api.link_requests())
