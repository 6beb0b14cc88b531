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
