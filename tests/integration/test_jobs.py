"""Bulk jobs end to end over moto: API -> upload (S3 event) -> jobs function -> chunks at the endpoint ->
completion -> assembled result files; and the inbox path, bad lines, unusable files, duplicates, cancel, retry,
dry run, expiry and tenant isolation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import pytest

from functions.jobs import handler as jobs_handler
from functions.sweeper import handler as sweeper_handler
from inference_core.dal.jobs import WAITING_JOBS, job_store
from inference_core.domain.clock import utc_now
from inference_core.logic.auth import create_api_key
from inference_core.settings import get_settings
from tests.integration.conftest import REGION, Invocation, Pipeline

pytestmark = pytest.mark.usefixtures("aws")


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def jsonl(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def good_lines(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"custom_id": f"row-{i}", "inputs": f"text number {i}"} for i in range(start, start + count)]


class JobDriver:
    """Plays Lambda (the intake, completion and sweeper functions) and SageMaker around one pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.line = pipeline
        self.answered: set[str] = set()

    def intake(self) -> int:
        handled = 0
        while messages := self.line.receive("JobIntakeQueue"):
            for message in messages:  # BatchSize 1 in the template
                self.line.deliver("JobIntakeQueue", [message], jobs_handler.lambda_handler)
                handled += 1
        return handled

    def pending(self) -> list[Invocation]:
        return [i for i in self.line.invocations if i.inference_id not in self.answered]

    def answer(self, invocations: list[Invocation] | None = None, fail: str | None = None) -> None:
        for invocation in invocations if invocations is not None else self.pending():
            self.answered.add(invocation.inference_id)
            if fail:
                self.line.endpoint_fails(invocation, fail)
            else:
                self.line.endpoint_succeeds(invocation)

    def complete(self) -> None:
        while messages := self.line.receive("CompletionQueue"):
            self.line.complete(messages)

    def run(self, rounds: int = 100) -> None:
        """Until nothing moves: intake, answer every chunk at the endpoint, complete."""
        for _ in range(rounds):
            moved = self.intake()
            pending = self.pending()
            self.answer(pending)
            self.complete()
            if not moved and not pending:
                return
        raise AssertionError("the job pipeline did not settle")

    def sweep(self) -> dict[str, Any]:
        result: dict[str, Any] = sweeper_handler.lambda_handler({}, self.line.context)
        return result


@pytest.fixture
def driver(pipeline: Pipeline) -> JobDriver:
    return JobDriver(pipeline)


def create_job(pipeline: Pipeline, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = pipeline.api.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def key_of(url: str) -> str:
    """The object key a presigned URL (path- or virtual-hosted-style) names."""
    bucket = get_settings().bucket_name
    parsed = urlparse(url)
    path = unquote(parsed.path).lstrip("/")
    return path if parsed.netloc.startswith(f"{bucket}.") else path.removeprefix(f"{bucket}/")


def upload(job: dict[str, Any], body: bytes) -> None:
    """What a PUT to the presigned URL does: the object at the job's key (the e2e tests use the URL itself)."""
    key = key_of(job["upload"]["url"])
    content_type = job["upload"]["headers"]["Content-Type"]
    s3().put_object(Bucket=get_settings().bucket_name, Key=key, Body=body, ContentType=content_type)


def get_job(pipeline: Pipeline, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = pipeline.api.get(f"/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def read_url_key(url: str) -> list[dict[str, Any]]:
    body = s3().get_object(Bucket=get_settings().bucket_name, Key=key_of(url))["Body"].read()
    return [json.loads(line) for line in body.split(b"\n") if line]


def test_an_uploaded_file_comes_back_as_result_and_error_files(
    pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "4")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers, metadata={"run": "nightly"})
    assert job["status"] == "awaiting_upload"
    assert job["upload"]["method"] == "PUT"
    assert job["upload"]["url"]
    lines: list[Any] = good_lines(10)
    lines.insert(3, b"{not json")
    lines.insert(5, {"custom_id": "row-1", "inputs": "a duplicate id"})
    lines.insert(7, {"custom_id": "row-x", "inputs": ""})
    lines.append({"custom_id": "b64", "inputs": ["one", "two"], "parameters": {"encoding_format": "base64"}})
    upload(job, jsonl(lines))

    driver.run()

    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 14, "completed": 11, "failed": 3}
    assert done["progress"]["fraction"] == 1.0
    assert [e["line"] for e in done["errors"]] == [4, 6, 8]
    assert done["metadata"] == {"run": "nightly"}
    assert done["source"] == "api"
    outputs = read_url_key(done["output_url"])
    assert [o["custom_id"] for o in outputs] == [f"row-{i}" for i in range(10)] + ["b64"]
    assert [o["line"] for o in outputs] == sorted(o["line"] for o in outputs)
    assert outputs[0]["output"]["embeddings"] == [[float(len("text number 0")), 1.0, 0.0]]
    assert all(isinstance(v, str) for v in outputs[-1]["output"]["embeddings"])  # base64 honoured per line
    errors = read_url_key(done["error_url"])
    assert [(e["line"], e["error"]["code"]) for e in errors] == [
        (4, "invalid_json"),
        (6, "duplicate_custom_id"),
        (8, "invalid_line"),
    ]
    # 11 valid lines with 12 texts in chunks of at most 4 texts: one invocation per chunk
    assert len(pipeline.invocations) == 3


def test_counts_move_chunk_by_chunk(pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "2")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "1")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(6)))
    driver.intake()
    assert len(pipeline.invocations) == 1  # the gate holds the other chunks back
    seen = []
    for _ in range(3):
        driver.answer()
        driver.complete()
        seen.append(get_job(pipeline, headers, job["id"])["request_counts"]["completed"])
    assert seen == [2, 4, 6]
    assert get_job(pipeline, headers, job["id"])["status"] == "completed"


def test_duplicate_notifications_and_events_change_nothing(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(3)))
    messages = pipeline.receive("JobIntakeQueue")
    pipeline.deliver("JobIntakeQueue", messages, jobs_handler.lambda_handler)
    pipeline.deliver("JobIntakeQueue", messages, jobs_handler.lambda_handler)  # the same S3 event again
    assert len(pipeline.invocations) == 1
    notification = pipeline.endpoint_succeeds(pipeline.invocations[0])
    driver.answered.add(pipeline.invocations[0].inference_id)
    pipeline.publish("SuccessTopic", notification)  # SNS delivers twice
    driver.complete()
    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert job_store().in_flight() == 0


def test_a_file_dropped_in_the_inbox_runs_and_writes_to_the_outbox(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers("acme")
    bucket = get_settings().bucket_name
    s3().put_object(Bucket=bucket, Key="inbox/acme/daily/2026-11-23.jsonl", Body=jsonl(good_lines(5)))
    driver.run()
    manifest = json.loads(
        s3().get_object(Bucket=bucket, Key="outbox/acme/daily/2026-11-23.manifest.json")["Body"].read()
    )
    assert manifest["status"] == "completed"
    assert manifest["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert manifest["output"] == f"s3://{bucket}/outbox/acme/daily/2026-11-23.output.jsonl"
    body = s3().get_object(Bucket=bucket, Key="outbox/acme/daily/2026-11-23.output.jsonl")["Body"].read()
    assert len(body.splitlines()) == 5
    listed = pipeline.api.get("/v1/jobs", headers=headers).json()["data"]
    assert [j["source"] for j in listed] == ["inbox"]
    assert listed[0]["input_location"].endswith("inbox/acme/daily/2026-11-23.jsonl")


def test_the_same_inbox_event_twice_is_one_job_and_a_new_upload_is_another(
    pipeline: Pipeline, driver: JobDriver
) -> None:
    headers = pipeline.headers("acme")
    bucket = get_settings().bucket_name
    s3().put_object(Bucket=bucket, Key="inbox/acme/a.jsonl", Body=jsonl(good_lines(2)))
    messages = pipeline.receive("JobIntakeQueue")
    for _ in range(2):
        pipeline.deliver("JobIntakeQueue", messages, jobs_handler.lambda_handler)
    assert len(pipeline.api.get("/v1/jobs", headers=headers).json()["data"]) == 1
    s3().put_object(Bucket=bucket, Key="inbox/acme/a.jsonl", Body=jsonl(good_lines(2)))
    driver.run()
    listed = pipeline.api.get("/v1/jobs", headers=headers).json()["data"]
    assert [j["status"] for j in listed] == ["completed", "completed"]


def test_an_inbox_file_of_a_tenant_without_a_key_is_refused_beside_it(pipeline: Pipeline, driver: JobDriver) -> None:
    bucket = get_settings().bucket_name
    s3().put_object(Bucket=bucket, Key="inbox/nobody/x.jsonl", Body=jsonl(good_lines(1)))
    driver.run()
    reason = json.loads(s3().get_object(Bucket=bucket, Key="inbox/nobody/x.jsonl.rejected.json")["Body"].read())
    assert reason["error"]["code"] == "unknown_tenant"
    assert pipeline.invocations == []


def test_an_inbox_file_past_the_open_jobs_limit_is_refused_but_its_own_event_again_is_not(
    pipeline: Pipeline, driver: JobDriver
) -> None:
    from inference_core.logic.limits import set_limits

    headers = pipeline.headers("acme")
    set_limits("acme", {"open_jobs": 1})
    bucket = get_settings().bucket_name
    s3().put_object(Bucket=bucket, Key="inbox/acme/first.jsonl", Body=jsonl(good_lines(2)))
    first = pipeline.receive("JobIntakeQueue")
    pipeline.deliver("JobIntakeQueue", first, jobs_handler.lambda_handler)
    pipeline.deliver("JobIntakeQueue", first, jobs_handler.lambda_handler)  # its own event again, the job open
    s3().put_object(Bucket=bucket, Key="inbox/acme/second.jsonl", Body=jsonl(good_lines(2)))
    pipeline.deliver("JobIntakeQueue", pipeline.receive("JobIntakeQueue"), jobs_handler.lambda_handler)

    keys = {o["Key"] for o in s3().list_objects_v2(Bucket=bucket, Prefix="inbox/acme/")["Contents"]}
    reason = json.loads(s3().get_object(Bucket=bucket, Key="inbox/acme/second.jsonl.rejected.json")["Body"].read())
    assert reason["error"]["code"] == "open_jobs_limit"
    assert "inbox/acme/first.jsonl.rejected.json" not in keys
    listed = pipeline.api.get("/v1/jobs", headers=headers).json()["data"]
    assert [j["input_location"].rsplit("/", 1)[-1] for j in listed] == ["first.jsonl"]
    driver.run()
    assert pipeline.api.get(f"/v1/jobs/{listed[0]['id']}", headers=headers).json()["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty_file"),
        (b"\n\n", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not_jsonl"),
        (b"[1, 2, 3]\n", "not_jsonl"),
    ],
)
def test_an_unusable_file_fails_the_job_with_a_reason(
    pipeline: Pipeline, driver: JobDriver, body: bytes, code: str
) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, body)
    driver.run()
    failed = get_job(pipeline, headers, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == code
    assert pipeline.invocations == []


def test_a_file_over_the_line_limit_fails(
    pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_MAX_LINES", "3")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(4)))
    driver.run()
    assert get_job(pipeline, headers, job["id"])["error"]["code"] == "too_many_lines"


def test_a_dry_run_validates_and_estimates_without_running(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers, dry_run=True)
    upload(job, jsonl([*good_lines(3), {"custom_id": "many", "inputs": ["a b c", "d"]}, b"oops"]))
    driver.run()
    checked = get_job(pipeline, headers, job["id"])
    assert checked["status"] == "validated"
    assert checked["request_counts"] == {"total": 5, "completed": 0, "failed": 1}
    assert checked["estimate"]["inputs"] == 5
    assert checked["estimate"]["tokens"] > 5
    assert checked["estimate"]["cost_usd"] >= 0
    assert checked["estimate"]["eta_seconds"] > 0
    assert [e["line"] for e in read_url_key(checked["error_url"])] == [5]
    assert pipeline.invocations == []


def test_cancel_mid_job_keeps_what_finished_and_fails_the_rest(
    pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "2")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "1")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(6)))
    driver.intake()
    driver.answer()
    driver.complete()  # chunk 0 done, chunk 1 at the endpoint
    cancelled = pipeline.api.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelling"
    driver.run()
    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "cancelled"
    assert done["request_counts"] == {"total": 6, "completed": 4, "failed": 2}
    assert len(pipeline.invocations) == 2  # nothing launched after the cancel
    assert {e["error"]["code"] for e in read_url_key(done["error_url"])} == {"cancelled"}
    assert len(read_url_key(done["output_url"])) == 4


def test_retry_runs_only_the_failed_lines(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(4)))
    driver.intake()
    driver.answer(fail="ModelError: out of memory")
    driver.complete()
    failed = get_job(pipeline, headers, job["id"])
    assert failed["status"] == "completed"
    assert failed["request_counts"]["failed"] == 4
    child = pipeline.api.post(f"/v1/jobs/{job['id']}/retry", headers=headers)
    assert child.status_code == 201, child.text
    assert child.json()["parent_id"] == job["id"]
    driver.run()
    rerun = get_job(pipeline, headers, child.json()["id"])
    assert rerun["status"] == "completed"
    assert rerun["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert [o["custom_id"] for o in read_url_key(rerun["output_url"])] == [f"row-{i}" for i in range(4)]


def test_a_job_past_its_window_expires_and_keeps_what_finished(
    pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "2")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "1")
    get_settings.cache_clear()
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(4)))
    driver.intake()
    driver.answer()
    driver.complete()
    driver.answer()  # chunk 1 answered but its notification not yet handled
    monkeypatch.setattr("inference_core.logic.job_sweep.utc_now", lambda: utc_now() + timedelta(hours=25))
    driver.sweep()
    assert get_job(pipeline, headers, job["id"])["status"] == "expired"
    driver.complete()
    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "expired"
    assert done["output_url"]
    assert done["request_counts"] == {"total": 4, "completed": 4, "failed": 0}


def test_a_job_never_uploaded_expires(pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    monkeypatch.setattr("inference_core.logic.job_sweep.utc_now", lambda: utc_now() + timedelta(hours=25))
    driver.sweep()
    expired = get_job(pipeline, headers, job["id"])
    assert expired["status"] == "expired"
    assert expired["completed_at"]


def test_another_tenants_job_is_not_found(pipeline: Pipeline) -> None:
    mine = create_job(pipeline, pipeline.headers("acme"))
    theirs = pipeline.headers("globex")
    for method, path in [
        ("get", f"/v1/jobs/{mine['id']}"),
        ("post", f"/v1/jobs/{mine['id']}/cancel"),
        ("post", f"/v1/jobs/{mine['id']}/retry"),
    ]:
        response = getattr(pipeline.api, method)(path, headers=theirs)
        assert response.status_code == 404, (path, response.text)
    assert pipeline.api.get("/v1/jobs", headers=theirs).json()["data"] == []


def test_a_lost_chunk_notification_is_finished_by_the_sweeper(
    pipeline: Pipeline, driver: JobDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(2)))
    driver.intake()
    driver.answer()
    pipeline.lose_notifications()
    late = utc_now() + timedelta(seconds=get_settings().invocation_timeout_seconds + 3600)
    monkeypatch.setattr("inference_core.logic.job_sweep.utc_now", lambda: late)
    driver.sweep()
    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed"
    assert done["request_counts"]["completed"] == 2


def test_bad_job_requests_are_refused(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    assert pipeline.api.post("/v1/jobs", json={"dry_run": "yes"}, headers=headers).status_code == 422
    assert pipeline.api.post("/v1/jobs", json={"webhook": "http://x"}, headers=headers).status_code == 422
    assert pipeline.api.post("/v1/jobs", json={"unknown": 1}, headers=headers).status_code == 422
    assert pipeline.api.post("/v1/jobs", json=[], headers=headers).status_code == 422
    assert pipeline.api.get("/v1/jobs/nope", headers=headers).status_code == 404
    assert pipeline.api.get("/v1/jobs", params={"cursor": "zzz"}, headers=headers).status_code == 400
    assert pipeline.api.post("/v1/jobs").status_code == 401
    token, _ = create_api_key("acme")
    plain = pipeline.api.post("/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 201, plain.text  # no body at all: every field is optional


def test_the_upload_link_is_signed_for_the_jobs_key_and_content_type(pipeline: Pipeline) -> None:
    # moto does not check signatures; S3 does, over exactly what the URL signs: this key and this header.
    job = create_job(pipeline, pipeline.headers("acme"))
    url = urlparse(job["upload"]["url"])
    query = dict(pair.split("=", 1) for pair in url.query.split("&"))
    assert key_of(job["upload"]["url"]) == f"uploads/acme/{job['id']}.jsonl"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert "content-type" in unquote(query["X-Amz-SignedHeaders"]).split(";")
    assert int(query["X-Amz-Expires"]) == 3600
    assert job["upload"]["headers"] == {"Content-Type": "application/jsonl"}


def test_a_retried_create_with_the_same_idempotency_key_is_the_same_job(pipeline: Pipeline) -> None:
    headers = pipeline.headers("acme", **{"Idempotency-Key": "nightly-2026-11-23"})
    first = pipeline.api.post("/v1/jobs", json={"metadata": {"run": "1"}}, headers=headers)
    again = pipeline.api.post("/v1/jobs", json={"metadata": {"run": "1"}}, headers=headers)
    other = pipeline.api.post("/v1/jobs", json={"metadata": {"run": "2"}}, headers=headers)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["upload"]["url"]
    assert other.status_code == 409
    assert len(pipeline.api.get("/v1/jobs", headers=headers).json()["data"]) == 1
    bad = pipeline.api.post("/v1/jobs", headers={**headers, "Idempotency-Key": "has space"})
    assert bad.status_code == 400


def test_a_retried_retry_with_the_same_key_is_one_child(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl(good_lines(2)))
    driver.intake()
    driver.answer(fail="ModelError: boom")
    driver.complete()
    keyed = {**headers, "Idempotency-Key": "retry-1"}
    first = pipeline.api.post(f"/v1/jobs/{job['id']}/retry", headers=keyed).json()
    replayed = pipeline.api.post(f"/v1/jobs/{job['id']}/retry", headers=keyed)
    assert replayed.status_code == 200
    second = replayed.json()
    assert first["id"] == second["id"]


def test_jobs_waiting_for_their_file_stay_out_of_the_schedulers_read(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    waiting = [create_job(pipeline, headers)["id"] for _ in range(3)]
    started = create_job(pipeline, headers)
    upload(started, jsonl(good_lines(1)))
    JobDriver(pipeline).intake()

    assert [job.id for job in job_store().active()] == [started["id"]]
    assert sorted(job.id for job in job_store().active(partition=WAITING_JOBS)) == sorted(waiting)


def test_a_job_waiting_for_its_file_offers_a_fresh_upload_link(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    again = get_job(pipeline, headers, job["id"])
    assert key_of(again["upload"]["url"]) == key_of(job["upload"]["url"])
    upload(job, jsonl(good_lines(1)))
    driver.run()
    assert get_job(pipeline, headers, job["id"])["upload"] is None


def test_the_rate_counts_only_lines_that_ran(pipeline: Pipeline, driver: JobDriver) -> None:
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl([b"bad", *good_lines(2)]))
    driver.intake()  # planned and launched, nothing finished yet
    planned = get_job(pipeline, headers, job["id"])
    assert planned["request_counts"]["failed"] == 1
    assert planned["progress"]["items_per_second"] is None
    assert planned["progress"]["eta_seconds"] is None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"Records": "nope"}',
        '{"Records": [{"eventSource": "aws:s3"}]}',
        '{"command": "settle", "job_id": "job_00000000000000000000000000000000"}',
        '{"command": "explode", "job_id": "x"}',
        '{"something": "else"}',
    ],
)
def test_a_malformed_intake_message_fails_alone_and_writes_nothing(pipeline: Pipeline, body: str) -> None:
    good = {"messageId": "good", "body": '{"Service": "Amazon S3", "Event": "s3:TestEvent"}'}
    event = {"Records": [{"messageId": "bad", "body": body}, good]}

    result = jobs_handler.lambda_handler(event, pipeline.context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert job_store().active() == []
    assert job_store().active(partition=WAITING_JOBS) == []


def test_events_for_other_keys_and_buckets_are_ignored(pipeline: Pipeline, driver: JobDriver) -> None:
    pipeline.headers("acme")
    bucket = get_settings().bucket_name
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-23T00:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": "", "size": 1, "eTag": "e"}},
    }
    for name, key in [
        (bucket, "uploads/acme/job_00000000000000000000000000000000.jsonl"),  # a job that does not exist
        (bucket, "inbox/acme.jsonl"),  # no tenant folder
        ("someone-elses-bucket", "inbox/acme/x.jsonl"),
    ]:
        body = json.dumps({"Records": [{**record, "s3": {"bucket": {"name": name}, "object": {"key": key}}}]})
        result = jobs_handler.lambda_handler({"Records": [{"messageId": "m", "body": body}]}, pipeline.context)
        assert result == {"batchItemFailures": []}
    assert job_store().active() == []
    assert pipeline.invocations == []
