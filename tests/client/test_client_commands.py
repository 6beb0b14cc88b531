"""The `inference` command against the fake API: output files, resume, exit codes, --json, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_client import AsyncClient, CircuitBreaker, RetryPolicy, cli
from inference_client.cli import resume_state

from tests.client.conftest import API_KEY, API_URL, FakeAPI, FakeClock, error, vector


@pytest.fixture
def run(api: FakeAPI, clock: FakeClock, monkeypatch, capsys):
    """Runs `inference ARGS` in-process with the fake API behind the client; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("INFERENCE_API_URL", API_URL)
    monkeypatch.setenv("INFERENCE_API_KEY", API_KEY)

    def client(*args: Any, **kwargs: Any) -> AsyncClient:
        return AsyncClient(
            *args,
            transport=httpx.MockTransport(api.handler),
            sleep=clock.async_sleep,
            clock=clock,
            breaker=CircuitBreaker(10, clock=clock),
            retry=RetryPolicy(max_attempts=3),
            **kwargs,
        )

    monkeypatch.setattr(cli, "AsyncClient", client)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_embed_a_file_into_json_lines_in_order(run, api, tmp_path) -> None:
    texts = [f"line {i}" for i in range(1, 601)]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts[:3]) + "\n\n   \n" + "\n".join(texts[3:]) + "\n")  # two blank lines
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = run("embed", "-f", str(source), "-o", str(out), "--json")
    assert code == 0, stderr
    written = records(out)
    assert [r["line"] for r in written] == [1, 2, 3, *range(6, 603)]
    assert [r["embedding"] for r in written] == [vector(t) for t in texts]
    summary = json.loads(stdout)
    assert summary["written"] == 600
    assert summary["blank_skipped"] == 2
    assert summary["already_done"] == 0
    assert stderr == ""  # no progress bar when stderr is not a terminal


def test_a_rerun_resumes_an_interrupted_run(run, api, tmp_path) -> None:
    texts = [f"line {i}" for i in range(1, 601)]
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    out = tmp_path / "out.jsonl"
    api.fails = lambda inputs: inputs[0] == "line 513"  # the third request fails

    code, _, stderr = run("embed", "-f", str(source), "-o", str(out), "--concurrency", "1")
    assert code == cli.EXIT_PREDICTION_FAILED
    assert stderr.startswith("error: prediction ")
    assert "Traceback" not in stderr
    assert [r["line"] for r in records(out)] == list(range(1, 513))
    # as if killed while writing a line:
    with out.open("a") as handle:
        handle.write('{"line":513,"embedding":[0.1,')

    api.fails = lambda _inputs: False
    sent_before = sum(len(i) for i in api.created_inputs())
    code, stdout, stderr = run("embed", "-f", str(source), "-o", str(out))
    assert code == 0, stderr
    assert sum(len(i) for i in api.created_inputs()) - sent_before == 88  # only the missing lines were sent
    assert "512 lines already there" in stdout
    written = records(out)
    assert [r["line"] for r in written] == list(range(1, 601))
    assert [r["embedding"] for r in written] == [vector(t) for t in texts]

    code, stdout, _ = run("embed", "-f", str(source), "-o", str(out), "--json")  # nothing left to do
    assert code == 0
    assert json.loads(stdout)["written"] == 0
    assert len(records(out)) == 600


def test_resume_state_refuses_a_file_that_is_not_ours(tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"line":1,"embedding":[1.0]}\n{"line": 3, "embedding": [2.0]}\n')
    assert resume_state(out, 3) == {1, 3}
    with pytest.raises(cli.UsageError, match="another input"):
        resume_state(out, 2)
    out.write_text('{"line":1,"embedding":[1.0]}\nhello\n')
    with pytest.raises(cli.UsageError, match="line 2 is not an embedding record"):
        resume_state(out, 3)


def test_texts_as_arguments_with_json_output(run) -> None:
    code, stdout, _ = run("embed", "A cat sleeps on the sofa.", "A kitten naps on the couch.", "--json")
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines == [
        {"line": 1, "embedding": vector("A cat sleeps on the sofa.")},
        {"line": 2, "embedding": vector("A kitten naps on the couch.")},
    ]
    code, stdout, _ = run("embed", "hello")
    assert code == 0
    assert stdout.startswith("text 1: 4 dims [")


@pytest.mark.parametrize(
    ("script", "expected", "needle"),
    [
        ([error(401, "unauthorized", "invalid API key")], cli.EXIT_AUTH, "invalid API key"),
        ([httpx.ConnectError("refused")] * 3, cli.EXIT_UNAVAILABLE, "could not reach"),
        ([error(503, "unavailable", "busy")] * 3, cli.EXIT_UNAVAILABLE, "busy"),
        ([error(422, "invalid_request", "bad")], cli.EXIT_ERROR, "bad"),
    ],
)
def test_expected_failures_exit_with_a_code_and_one_line(run, api, script, expected, needle) -> None:
    api.script = list(script)
    code, stdout, stderr = run("embed", "hello")
    assert code == expected
    assert stdout == ""
    assert stderr.count("\n") == 1
    assert stderr.startswith("error: ")
    assert needle in stderr

    api.script = list(script)
    code, _, stderr = run("predictions", "list", "--json")
    assert code == expected
    body = json.loads(stderr)
    assert body["exit_code"] == expected
    assert set(body["error"]) == {"code", "message", "details"}


def test_missing_configuration_and_bad_input(run, api, monkeypatch, tmp_path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("fine\n" + "x" * 9000 + "\n")
    code, _, stderr = run("embed", "-f", str(source))
    assert code == cli.EXIT_USAGE
    assert "line 2 is 9,000 characters" in stderr
    code, _, stderr = run("embed", "-f", str(tmp_path / "missing.txt"))
    assert code == cli.EXIT_USAGE
    assert "cannot read" in stderr
    assert api.requests == []

    monkeypatch.delenv("INFERENCE_API_KEY")
    code, _, stderr = run("predictions", "list")
    assert code == cli.EXIT_CONFIG
    assert "INFERENCE_API_KEY" in stderr


def test_predictions_get_list_cancel(run, api) -> None:
    api.polls_needed = lambda _inputs: 100
    code, stdout, _ = run("embed", "a", "--json", "--wait-timeout", "1")
    assert code == cli.EXIT_PREDICTION_FAILED  # still running after 1 s
    prediction_id = next(iter(api.predictions))

    code, stdout, _ = run("predictions", "get", prediction_id, "--json")
    assert code == 0
    assert json.loads(stdout)["id"] == prediction_id
    code, stdout, _ = run("predictions", "get", prediction_id)
    assert "status       running" in stdout

    code, stdout, _ = run("predictions", "list", "--all", "--limit", "1", "--json")
    assert [p["id"] for p in json.loads(stdout)["data"]] == [prediction_id]

    code, stdout, _ = run("predictions", "cancel", prediction_id)
    assert (code, stdout) == (0, f"{prediction_id} cancelled\n")

    code, _, stderr = run("predictions", "get", "00000000-0000-0000-0000-000000000000")
    assert code == cli.EXIT_NOT_FOUND
    assert "prediction not found" in stderr


def test_help_documents_the_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    assert "exit codes:" in capsys.readouterr().out


# -- jobs --------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


JOB_LINES = [
    {"custom_id": "a", "inputs": "A cat sleeps on the sofa."},
    "not json",
    {"custom_id": "b", "inputs": "A kitten naps on the couch."},
]


def test_jobs_submit_waits_and_downloads_both_files(run, api, tmp_path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    out, err = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    code, stdout, stderr = run(
        "jobs", "submit", str(source), "--output", str(out), "--errors", str(err), "--metadata", "run=nightly"
    )
    assert code == 0, stderr
    assert [(r["custom_id"], r["line"]) for r in records(out)] == [("a", 1), ("b", 3)]
    assert [r["error"]["code"] for r in records(err)] == ["invalid_json"]
    (job,) = api.jobs.values()
    assert job["status"] == "completed"
    digest = __import__("hashlib").sha256(source.read_bytes()).hexdigest()
    assert job["metadata"] == {"run": "nightly", "file_name": "texts.jsonl", "file_sha256": digest}
    assert f"uploaded texts.jsonl ({source.stat().st_size} bytes) as job {job['id']}\n" == stderr
    assert "status       completed\n" in stdout
    assert f"output       {out} (2 lines)\n" in stdout
    assert f"errors       {err} (1 lines)\n" in stdout


def test_jobs_submit_again_reuses_the_job_of_the_same_file(run, api, tmp_path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    code, stdout, _ = run("jobs", "submit", str(source), "--json")  # no --wait: the job is running
    assert code == 0
    first = json.loads(stdout)
    assert first["reused"] is False
    assert first["files"] == {"output": None, "errors": None}
    job_id = first["job"]["id"]

    # Rerun with --wait: the running job is picked up, not uploaded again; files go beside FILE by default.
    code, stdout, stderr = run("jobs", "submit", str(source), "--wait")
    assert code == 0, stderr
    assert stderr.startswith(f"reusing job {job_id} (in_progress, created ")
    assert len(api.api_requests("POST", "/v1/jobs")) == 1
    assert len(api.link_requests("PUT")) == 1
    assert [r["custom_id"] for r in records(tmp_path / "texts.output.jsonl")] == ["a", "b"]
    assert len(records(tmp_path / "texts.errors.jsonl")) == 1

    code, stdout, _ = run("jobs", "submit", str(source), "--json")  # finished: still the same job
    assert (json.loads(stdout)["reused"], json.loads(stdout)["job"]["id"]) == (True, job_id)

    # Not the same file: another name, other bytes, a dry run, or --new.
    write_jsonl(tmp_path / "texts.jsonl", JOB_LINES[:1])
    code, stdout, _ = run("jobs", "submit", str(source), "--json")
    assert json.loads(stdout)["reused"] is False
    code, stdout, _ = run("jobs", "submit", str(source), "--json", "--dry-run")
    assert json.loads(stdout)["reused"] is False
    code, stdout, _ = run("jobs", "submit", str(source), "--json", "--new")
    assert json.loads(stdout)["reused"] is False
    assert len(api.jobs) == 4


def test_jobs_submit_does_not_reuse_a_job_that_cannot_give_results(run, api, tmp_path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    digest = __import__("hashlib").sha256(source.read_bytes()).hexdigest()
    same = {"file_name": "texts.jsonl", "file_sha256": digest}
    for status in ("awaiting_upload", "failed", "cancelling", "cancelled", "expired"):
        api.add_job(status=status, metadata=same)
    api.add_job(status="completed", metadata=same, source="retry")  # only the failed lines of another job
    code, stdout, _ = run("jobs", "submit", str(source), "--json")
    assert code == 0
    assert json.loads(stdout)["reused"] is False
    assert len(api.link_requests("PUT")) == 1


def test_a_job_that_ends_cancelled_keeps_its_files_and_exits_7(run, api, tmp_path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    api.job_polls = 1000

    def cancel_during_the_wait(request: httpx.Request) -> None:
        for job in api.jobs.values():
            job["status"] = "cancelling"

    api.script = [lambda _r: None] * 4 + [cancel_during_the_wait]  # list, POST, PUT, GET, then the first poll
    code, stdout, stderr = run("jobs", "submit", str(source), "--wait", "--json")
    assert code == cli.EXIT_PREDICTION_FAILED
    summary = json.loads(stdout)
    assert summary["job"]["status"] == "cancelled"
    assert summary["files"]["output"].endswith("texts.output.jsonl")
    body = json.loads(stderr)
    assert body["error"]["code"] == "job_failed"
    assert body["exit_code"] == cli.EXIT_PREDICTION_FAILED
    assert body["error"]["details"]["job"]["id"] == summary["job"]["id"]


def test_a_job_whose_file_is_unusable_is_one_error_line(run, api, tmp_path) -> None:
    failed = api.add_job(
        status="failed", completed_at="2026-11-23T11:31:00.000Z", error={"code": "empty_file", "message": "no lines"}
    )
    code, stdout, stderr = run("jobs", "download", failed["id"])
    assert code == cli.EXIT_PREDICTION_FAILED
    assert "error        empty_file: no lines\n" in stdout
    assert stderr == f"error: job {failed['id']} ended failed: empty_file: no lines\n"


def test_jobs_get_list_cancel_retry_download(run, api, tmp_path, monkeypatch) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    api.job_polls = 2
    code, stdout, _ = run("jobs", "submit", str(source), "--json")
    job_id = json.loads(stdout)["job"]["id"]

    code, stdout, stderr = run("jobs", "download", job_id, "--json")  # still running
    assert code == cli.EXIT_PREDICTION_FAILED
    assert json.loads(stderr)["error"]["code"] == "job_not_finished"

    code, stdout, _ = run("jobs", "get", job_id, "--wait")
    assert code == 0
    assert "lines        3 total: 2 completed, 1 failed\n" in stdout
    assert "invalid      line 2: invalid_json: the line is not a JSON document\n" in stdout

    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run("jobs", "download", job_id)
    assert code == 0
    assert len(records(tmp_path / f"{job_id}.output.jsonl")) == 2
    assert len(records(tmp_path / f"{job_id}.errors.jsonl")) == 1
    code, stdout, _ = run("jobs", "download", job_id, "--errors", "only-errors.jsonl", "--json")
    assert json.loads(stdout)["files"] == {"output": None, "errors": "only-errors.jsonl"}

    code, stdout, _ = run("jobs", "retry", job_id)
    assert code == 0
    assert stdout.endswith(f"validating (retry of {job_id})\n")
    child_id = stdout.split()[0]

    code, stdout, _ = run("jobs", "list")
    assert [line.split()[0] for line in stdout.splitlines()] == [child_id, job_id]
    assert "texts.jsonl" in stdout.splitlines()[1]
    code, stdout, stderr = run("jobs", "list", "--limit", "1", "--json")
    assert [j["id"] for j in json.loads(stdout)["data"]] == [child_id]
    assert json.loads(stdout)["next_cursor"] is not None

    code, stdout, _ = run("jobs", "cancel", child_id)
    assert (code, stdout) == (0, f"{child_id} cancelling\n")
    code, _, stderr = run("jobs", "cancel", job_id)
    assert code == cli.EXIT_ERROR
    assert stderr.startswith("error: a completed job cannot be cancelled")
    code, _, stderr = run("jobs", "get", "job_" + "0" * 32)
    assert (code, stderr) == (cli.EXIT_NOT_FOUND, "error: job not found (HTTP 404, not_found)\n")


def test_jobs_submit_wait_timeout_and_interrupt_messages(run, api, tmp_path) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    api.job_polls = 1000
    code, _, stderr = run("jobs", "submit", str(source), "--wait", "--wait-timeout", "2")
    assert code == cli.EXIT_PREDICTION_FAILED
    assert stderr.splitlines()[-1].startswith("error: job job_")
    assert stderr.splitlines()[-1].endswith(" still in_progress after 2s")

    def interrupt(_request: httpx.Request) -> None:
        raise KeyboardInterrupt

    api.script = [lambda _r: None, interrupt]  # the search for an earlier job, then the first read of it
    code, _, stderr = run("jobs", "submit", str(source), "--wait")
    (job_id,) = api.jobs
    assert code == cli.EXIT_INTERRUPTED
    assert stderr.splitlines()[-1] == f"interrupted; job {job_id} goes on: rerun the same command to pick it up"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--metadata", "no-equals-sign"], "--metadata takes KEY=VALUE"),
        (["--metadata", "file_name=x"], "is set by jobs submit"),
        (["--output", "missing-dir/out.jsonl"], "no such directory"),
    ],
)
def test_jobs_submit_usage_errors_send_nothing(run, api, tmp_path, args, needle) -> None:
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    code, stdout, stderr = run("jobs", "submit", str(source), *args)
    assert code == cli.EXIT_USAGE
    assert (stdout, stderr.count("\n")) == ("", 1)
    assert needle in stderr
    assert api.requests == []


def test_jobs_submit_refuses_an_unreadable_or_empty_file_or_writing_over_it(run, api, tmp_path) -> None:
    code, _, stderr = run("jobs", "submit", str(tmp_path / "missing.jsonl"))
    assert (code, "cannot read" in stderr) == (cli.EXIT_USAGE, True)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    code, _, stderr = run("jobs", "submit", str(tmp_path / "empty.jsonl"))
    assert (code, "is empty" in stderr) == (cli.EXIT_USAGE, True)
    source = write_jsonl(tmp_path / "texts.jsonl", JOB_LINES)
    code, _, stderr = run("jobs", "submit", str(source), "--output", str(source))
    assert (code, "is the input file" in stderr) == (cli.EXIT_USAGE, True)
    assert api.requests == []
