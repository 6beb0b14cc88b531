"""/v1/files and /v1/batches over moto: a batch runs as a bulk job and comes back as OpenAI's output and error
files; hostile uploads and batch requests are 4xx in OpenAI's envelope with nothing written; cancel, paging,
tenant isolation, batch.* webhooks, and a lost validation command picked up by the sweeper."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from openai import OpenAI

from inference_core.domain.clock import utc_now
from inference_core.errors import TransientError
from inference_core.logic.job_sweep import sweep_jobs
from inference_core.settings import get_settings
from tests.integration.conftest import REGION, Pipeline
from tests.integration.test_jobs import JobDriver, jsonl
from tests.integration.test_webhooks import Receiver, receiver, send_webhooks  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("aws")


def request_line(custom_id: str, body: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": body if body is not None else {"model": "all-MiniLM-L6-v2", "input": f"text of {custom_id}"},
    }
    return {**line, **envelope}


def upload_file(
    pipeline: Pipeline, headers: dict[str, str], content: bytes, purpose: str = "batch", name: str = "in.jsonl"
) -> Any:
    return pipeline.api.post(
        "/v1/files", headers=headers, files={"file": (name, content, "application/jsonl")}, data={"purpose": purpose}
    )


def file_id_of(pipeline: Pipeline, headers: dict[str, str], lines: list[Any]) -> str:
    response = upload_file(pipeline, headers, jsonl(lines))
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create_batch(pipeline: Pipeline, headers: dict[str, str], file_id: str, **extra: Any) -> Any:
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h", **extra}
    return pipeline.api.post("/v1/batches", json=body, headers=headers)


def lines_of(pipeline: Pipeline, headers: dict[str, str], file_id: str) -> list[dict[str, Any]]:
    response = pipeline.api.get(f"/v1/files/{file_id}/content", headers=headers)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.content.split(b"\n") if line]


def stored_objects(prefix: str) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=get_settings().bucket_name, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_file_is_uploaded_listed_read_downloaded_and_deleted(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    content = jsonl([request_line("a"), request_line("b")])

    uploaded = upload_file(pipeline, headers, content, name="nightly.jsonl")

    assert uploaded.status_code == 200, uploaded.text
    stored = uploaded.json()
    assert stored["id"].startswith("file-")
    assert stored["object"] == "file"
    assert (stored["bytes"], stored["filename"], stored["purpose"]) == (len(content), "nightly.jsonl", "batch")
    assert stored["expires_at"] - stored["created_at"] == 30 * 24 * 3600
    assert pipeline.api.get(f"/v1/files/{stored['id']}", headers=headers).json() == stored
    assert pipeline.api.get(f"/v1/files/{stored['id']}/content", headers=headers).content == content
    listed = pipeline.api.get("/v1/files", headers=headers).json()
    assert [f["id"] for f in listed["data"]] == [stored["id"]]
    assert listed["has_more"] is False
    other = pipeline.headers("globex")
    assert pipeline.api.get(f"/v1/files/{stored['id']}", headers=other).status_code == 404
    assert pipeline.api.delete(f"/v1/files/{stored['id']}", headers=other).status_code == 404

    deleted = pipeline.api.delete(f"/v1/files/{stored['id']}", headers=headers)

    assert deleted.json() == {"id": stored["id"], "object": "file", "deleted": True}
    assert pipeline.api.get(f"/v1/files/{stored['id']}", headers=headers).status_code == 404
    assert stored_objects(get_settings().file_prefix) == []


def test_a_file_can_ask_for_a_shorter_life_within_openais_bounds(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    form = {"purpose": "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    files = {"file": ("in.jsonl", jsonl([request_line("a")]), "application/jsonl")}

    kept = pipeline.api.post("/v1/files", headers=headers, files=files, data=form).json()
    too_short = pipeline.api.post(
        "/v1/files", headers=headers, files=files, data={**form, "expires_after[seconds]": "60"}
    )

    assert kept["expires_at"] - kept["created_at"] == 3600
    assert too_short.status_code == 400
    assert too_short.json()["error"]["param"] == "expires_after"


def test_a_batch_of_good_and_bad_lines_completes_with_every_custom_id_once_in_the_right_file(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "3")
    get_settings.cache_clear()
    headers = pipeline.headers()
    lines = [
        request_line("good-0"),
        request_line("empty", {"model": "all-MiniLM-L6-v2", "input": ""}),
        request_line("good-1", {"model": "all-MiniLM-L6-v2", "input": ["one", "two"], "encoding_format": "base64"}),
        request_line("other-model", {"model": "text-embedding-3-small", "input": "x"}),
        request_line("short", {"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 128}),
        request_line("tokens", {"model": "all-MiniLM-L6-v2", "input": [[15339, 1917]]}),
        request_line("unknown-field", {"model": "all-MiniLM-L6-v2", "input": "x", "temperature": 1}),
        request_line("good-2"),
    ]
    file_id = file_id_of(pipeline, headers, lines)

    created = create_batch(pipeline, headers, file_id, metadata={"run": "nightly"})

    assert created.status_code == 200, created.text
    batch = created.json()
    assert batch["id"].startswith("batch_")
    assert (batch["object"], batch["status"], batch["endpoint"]) == ("batch", "validating", "/v1/embeddings")
    assert (batch["input_file_id"], batch["completion_window"]) == (file_id, "24h")
    assert batch["expires_at"] - batch["created_at"] == 24 * 3600
    assert batch["metadata"] == {"run": "nightly"}
    JobDriver(pipeline).run()
    done = pipeline.api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 8, "completed": 4, "failed": 4}
    assert done["in_progress_at"]
    assert done["finalizing_at"]
    assert done["completed_at"]
    assert done["failed_at"] is None
    assert done["cancelled_at"] is None
    assert done["usage"]["input_tokens"] > 0
    outputs = lines_of(pipeline, headers, done["output_file_id"])
    errors = lines_of(pipeline, headers, done["error_file_id"])
    assert [o["custom_id"] for o in outputs] == ["good-0", "good-1", "tokens", "good-2"]
    assert sorted(o["custom_id"] for o in outputs + errors) == sorted(line["custom_id"] for line in lines)
    first = outputs[0]
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"].startswith("req_")
    body = first["response"]["body"]
    assert body["object"] == "list"
    assert body["model"] == "all-MiniLM-L6-v2"
    assert body["data"] == [{"object": "embedding", "index": 0, "embedding": [float(len("text of good-0")), 1.0, 0.0]}]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert all(isinstance(item["embedding"], str) for item in outputs[1]["response"]["body"]["data"])  # base64
    by_id = {e["custom_id"]: e for e in errors}
    assert {k: v["response"]["status_code"] for k, v in by_id.items()} == {
        "empty": 400,
        "other-model": 404,
        "short": 400,
        "unknown-field": 400,
    }
    assert by_id["other-model"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert "Matryoshka" in by_id["short"]["response"]["body"]["error"]["message"]
    assert all(e["error"] is None for e in errors)
    output_file = pipeline.api.get(f"/v1/files/{done['output_file_id']}", headers=headers).json()
    assert output_file["purpose"] == "batch_output"
    assert output_file["filename"] == f"{batch['id']}_output.jsonl"
    listed = pipeline.api.get("/v1/files", params={"purpose": "batch_output"}, headers=headers).json()
    assert {f["id"] for f in listed["data"]} == {done["output_file_id"], done["error_file_id"]}
    # a batch is not a native job: /v1/jobs neither lists nor shows it
    assert pipeline.api.get("/v1/jobs", headers=headers).json()["data"] == []
    job_id = "job_" + batch["id"].removeprefix("batch_")
    assert pipeline.api.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 404


def test_a_batch_without_errors_has_no_error_file(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    batch = create_batch(pipeline, headers, file_id_of(pipeline, headers, [request_line("a")])).json()
    JobDriver(pipeline).run()

    done = pipeline.api.get(f"/v1/batches/{batch['id']}", headers=headers).json()

    assert done["status"] == "completed"
    assert done["output_file_id"] is not None
    assert done["error_file_id"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (jsonl([request_line("a", url="/v1/chat/completions")]), "url must be /v1/embeddings"),
        (jsonl([request_line("a", method="GET")]), "method must be POST"),
        (jsonl([request_line("a"), request_line("a")]), "line 2: custom_id 'a' is used by an earlier line"),
        (jsonl([request_line("a"), b"{not json"]), "line 2: the line is not a JSON document"),
        (jsonl([{"custom_id": "a", "method": "POST", "url": "/v1/embeddings"}]), "body"),
        (jsonl([request_line("a", body=[1])]), "body"),  # type: ignore[arg-type]
        (jsonl([request_line("")]), "custom_id"),
        (jsonl([request_line("a", extra=1)]), "extra"),
        (b"\xff\xfe\n", "UTF-8"),
        (b"[1, 2]\n", "JSON object"),
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
    ],
)
def test_a_file_that_cannot_be_a_batch_is_refused_and_not_kept(
    pipeline: Pipeline, content: bytes, message: str
) -> None:
    headers = pipeline.headers()

    refused = upload_file(pipeline, headers, content)

    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert refused.headers["x-should-retry"] == "false"
    assert pipeline.api.get("/v1/files", headers=headers).json()["data"] == []
    assert stored_objects(get_settings().file_prefix) == []


def test_uploads_that_are_not_files_or_too_large_are_refused(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILE_MAX_BYTES", "1000")
    get_settings.cache_clear()
    headers = pipeline.headers()

    without_file = pipeline.api.post("/v1/files", headers=headers, data={"purpose": "batch"})
    json_body = pipeline.api.post("/v1/files", headers=headers, json={"purpose": "batch"})
    other_purpose = upload_file(pipeline, headers, jsonl([request_line("a")]), purpose="fine-tune")
    too_large = upload_file(pipeline, headers, jsonl([request_line(f"id-{n}") for n in range(40)]))
    unauthenticated = upload_file(pipeline, {"Authorization": "Bearer nope"}, jsonl([request_line("a")]))

    assert without_file.status_code == 400
    assert without_file.json()["error"]["param"] == "file"
    assert json_body.status_code == 400
    assert other_purpose.status_code == 400
    assert other_purpose.json()["error"]["param"] == "purpose"
    assert too_large.status_code == 413
    assert unauthenticated.status_code == 401
    assert pipeline.api.get("/v1/files", headers=headers).json()["data"] == []


def test_batch_requests_that_cannot_run_are_refused_and_create_nothing(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    file_id = file_id_of(pipeline, headers, [request_line("a")])
    theirs = file_id_of(pipeline, pipeline.headers("globex"), [request_line("a")])
    base = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}

    cases = {
        "other tenant's file": (create_batch(pipeline, headers, theirs), 404),
        "unknown file": (create_batch(pipeline, headers, "file-" + "0" * 32), 404),
        "not a file id": (create_batch(pipeline, headers, "../../etc"), 404),
        "endpoint": (
            pipeline.api.post("/v1/batches", json={**base, "endpoint": "/v1/chat/completions"}, headers=headers),
            400,
        ),
        "window": (pipeline.api.post("/v1/batches", json={**base, "completion_window": "48h"}, headers=headers), 400),
        "metadata": (
            pipeline.api.post(
                "/v1/batches", json={**base, "metadata": {str(n): "v" for n in range(17)}}, headers=headers
            ),
            400,
        ),
        "not json": (
            pipeline.api.post("/v1/batches", content=b"{nope", headers={**headers, "Content-Type": "application/json"}),
            400,
        ),
        "missing field": (pipeline.api.post("/v1/batches", json={"input_file_id": file_id}, headers=headers), 400),
        "internal webhook": (
            pipeline.api.post("/v1/batches", json={**base, "webhook": "http://169.254.169.254/"}, headers=headers),
            400,
        ),
    }

    for name, (response, status) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}, name
    assert pipeline.api.get("/v1/batches", headers=headers).json()["data"] == []
    assert pipeline.api.get("/v1/batches/batch_nope", headers=headers).status_code == 404


def test_cancel_keeps_what_finished_and_the_rest_never_ran(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "2")
    monkeypatch.setenv("JOB_MAX_IN_FLIGHT_CHUNKS", "1")
    get_settings.cache_clear()
    headers = pipeline.headers()
    batch = create_batch(pipeline, headers, file_id_of(pipeline, headers, [request_line(f"r{n}") for n in range(6)]))
    batch_id = batch.json()["id"]
    driver = JobDriver(pipeline)
    driver.intake()
    driver.answer()
    driver.complete()  # chunk 0 done, chunk 1 at the endpoint

    cancelling = pipeline.api.post(f"/v1/batches/{batch_id}/cancel", headers=headers).json()
    driver.run()
    done = pipeline.api.get(f"/v1/batches/{batch_id}", headers=headers).json()
    again = pipeline.api.post(f"/v1/batches/{batch_id}/cancel", headers=headers)

    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"]
    assert done["status"] == "cancelled"
    assert done["cancelled_at"]
    assert done["request_counts"] == {"total": 6, "completed": 4, "failed": 2}
    never_ran = lines_of(pipeline, headers, done["error_file_id"])
    assert [(e["response"], e["error"]["code"]) for e in never_ran] == [(None, "batch_cancelled")] * 2
    assert again.status_code == 200  # cancelling a cancelled batch is not an error
    assert again.json()["status"] == "cancelled"


def test_a_finished_batch_cannot_be_cancelled_and_the_sdk_is_told_not_to_retry(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    batch = create_batch(pipeline, headers, file_id_of(pipeline, headers, [request_line("a")])).json()
    JobDriver(pipeline).run()

    refused = pipeline.api.post(f"/v1/batches/{batch['id']}/cancel", headers=headers)

    assert refused.status_code == 409
    assert refused.headers["x-should-retry"] == "false"


def test_batches_page_newest_first_by_the_last_id(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    file_id = file_id_of(pipeline, headers, [request_line("a")])
    made = [create_batch(pipeline, headers, file_id).json()["id"] for _ in range(3)]

    first = pipeline.api.get("/v1/batches", params={"limit": 2}, headers=headers).json()
    rest = pipeline.api.get("/v1/batches", params={"limit": 2, "after": first["last_id"]}, headers=headers).json()

    assert first["object"] == "list"
    assert [b["id"] for b in first["data"]] == made[::-1][:2]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (made[2], made[1], True)
    assert [b["id"] for b in rest["data"]] == [made[0]]
    assert rest["has_more"] is False
    assert pipeline.api.get("/v1/batches", headers=pipeline.headers("globex")).json()["data"] == []
    assert pipeline.api.get("/v1/batches", params={"after": "batch_" + "0" * 32}, headers=headers).status_code == 400


def test_files_page_by_the_last_id_in_either_order(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    made = [file_id_of(pipeline, headers, [request_line(str(n))]) for n in range(3)]

    newest = pipeline.api.get("/v1/files", params={"limit": 2}, headers=headers).json()
    oldest = pipeline.api.get("/v1/files", params={"limit": 2, "order": "asc"}, headers=headers).json()
    after = pipeline.api.get("/v1/files", params={"limit": 2, "after": newest["last_id"]}, headers=headers).json()

    assert [f["id"] for f in newest["data"]] == made[::-1][:2]
    assert newest["has_more"] is True
    assert [f["id"] for f in oldest["data"]] == made[:2]
    assert [f["id"] for f in after["data"]] == [made[0]]
    assert after["has_more"] is False


def test_a_large_file_is_downloaded_through_a_short_lived_link(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INLINE_OUTPUT_MAX_BYTES", "10")
    get_settings.cache_clear()
    headers = pipeline.headers()
    file_id = file_id_of(pipeline, headers, [request_line("a")])

    response = pipeline.api.get(f"/v1/files/{file_id}/content", headers=headers, follow_redirects=False)

    assert response.status_code == 307
    assert "X-Amz-Signature" in response.headers["location"] or "Signature" in response.headers["location"]


def test_a_finished_batch_sends_batch_completed_that_openais_sdk_verifies(
    pipeline: Pipeline,
    receiver: str,  # noqa: F811
) -> None:
    headers = pipeline.headers()
    file_id = file_id_of(pipeline, headers, [request_line("a")])
    batch = create_batch(pipeline, headers, file_id, webhook=receiver).json()
    JobDriver(pipeline).run()

    send_webhooks(pipeline)

    delivered_headers, body = Receiver.seen[0]
    secret = pipeline.api.get("/v1/webhooks/secret", headers=headers).json()["secret"]
    event = OpenAI(api_key="unused", base_url="http://127.0.0.1:9").webhooks.unwrap(
        body, delivered_headers, secret=secret
    )
    assert event.type == "batch.completed"
    assert event.data.id == batch["id"]
    assert event.object == "event"


def test_a_batch_whose_validation_command_was_lost_is_started_by_the_sweeper(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    file_id = file_id_of(pipeline, headers, [request_line("a")])
    driver = JobDriver(pipeline)
    with monkeypatch.context() as lost:
        lost.setattr("inference_core.logic.openai_batches.job_commands", _lost_commands)
        batch = create_batch(pipeline, headers, file_id).json()
    driver.intake()  # nothing for the batch was queued
    waiting = pipeline.api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    early = sweep_jobs(utc_now())
    late = sweep_jobs(utc_now() + timedelta(minutes=3))
    driver.run()

    assert waiting["status"] == "validating"
    assert (early.validations_restarted, late.validations_restarted) == (0, 1)
    assert pipeline.api.get(f"/v1/batches/{batch['id']}", headers=headers).json()["status"] == "completed"


class _LostCommands:
    def send(self, command: str, job_id: str) -> None:
        raise TransientError("the queue is down")


def _lost_commands() -> _LostCommands:
    return _LostCommands()
