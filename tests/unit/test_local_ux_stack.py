"""`make run` on a taken port and `make demo` with no stack: one clear line and an exit code, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_client import APIConnectionError, AuthenticationError, Client

from local_stack import __main__ as run
from local_stack import demo
from local_stack.runner import free_port

REPO = Path(__file__).resolve().parents[2]


def test_a_port_in_use_is_named_with_the_way_out(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run.main(["--port", str(port), "--state-dir", "/nonexistent/never-written"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"port {port} on 127.0.0.1 is already in use: stop what is using it, or run `make run PORT={port + 1}`\n"
    )
    assert not Path("/nonexistent/never-written").exists()  # nothing was started or written


def test_a_free_port_passes_the_check() -> None:
    assert run.port_problem("127.0.0.1", free_port("127.0.0.1")) is None


def test_an_out_of_range_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run.parse(["--port", "70000"])
    assert exited.value.code == 2
    assert "70000 is not a TCP port" in capsys.readouterr().err


def test_make_run_on_a_taken_port_prints_no_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "local_stack", "--port", str(port)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "layers", "api"))},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert result.stdout == ""


def test_the_banner_says_that_state_is_in_memory(tmp_path: Path) -> None:
    class Started:
        startup_seconds = 4.2
        urls = {"api": "http://127.0.0.1:8000", "aws": "http://127.0.0.1:1", "sagemaker": "http://127.0.0.1:2"}

    (tmp_path / "api-key").write_text("ik_0123456789abcdef.secret\n")
    options = run.parse(["--state-dir", str(tmp_path)])
    banner = run.summary(Started(), options)  # type: ignore[arg-type]
    assert "State is in memory: predictions and keys are gone when this stops" in banner
    assert f"a new dev key is written to {tmp_path}/api-key on every start" in banner
    assert "ik_0123456789abcdef.secret" in banner


def write_state(state: Path, api_url: str) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "env").write_text(f"export API_URL='{api_url}'\nexport TABLE_NAME='t'\n")
    (state / "api-key").write_text("ik_0123456789abcdef.secret\n")


def test_demo_with_no_stack_answering_says_to_start_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nobody listens there
    write_state(tmp_path, url)
    assert demo.main(["--state-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"no local stack answers at {url}: start `make run` first\n"


def test_demo_without_state_says_to_start_the_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--state-dir", str(tmp_path / "missing")]) == 1
    assert "no local stack found: start it with `make run`" in capsys.readouterr().err


def fake_api() -> httpx.MockTransport:
    """The API's answers for `make demo`: the four sentences at once, then 20 queued predictions done on first read."""
    vectors = [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]]
    created = "2025-01-01T00:00:00+00:00"

    def prediction(pid: str, status: str, embeddings: list[list[float]] | None) -> dict[str, Any]:
        output = {"model": "test-model", "dimensions": 3, "embeddings": embeddings} if embeddings else None
        metrics = {"queue_ms": 12, "inference_ms": 34}
        return {"id": pid, "status": status, "created_at": created, "output": output, "metrics": metrics}

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer ik_test.secret"
        if request.method == "POST":
            assert request.headers["Idempotency-Key"]
            body = json.loads(request.content)
            if isinstance(body["inputs"], list):
                assert request.headers["Prefer"] == "wait=20"
                assert body["metadata"] == {"source": "make demo"}
                return httpx.Response(200, json=prediction("pred_demo", "succeeded", vectors))
            assert "Prefer" not in request.headers
            return httpx.Response(202, json=prediction(f"pred_{body['inputs'].split()[-1]}", "queued", None))
        pid = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json=prediction(pid, "succeeded", [[1.0, 0.0, 0.0]]))

    return httpx.MockTransport(handle)


def test_demo_prints_embeddings_similarities_and_timings(capsys: pytest.CaptureFixture[str]) -> None:
    with Client("http://127.0.0.1:1", "ik_test.secret", transport=fake_api()) as client:
        assert demo.run_demo(client) == 0
    out = capsys.readouterr().out
    assert out.startswith("prediction pred_demo: succeeded in ")
    assert "(queue 12 ms, inference 34 ms)\nmodel test-model, 3 dimensions\n" in out
    assert "  A cat sleeps on the sofa.                  [+1.0000, +0.0000, +0.0000, ...]" in out
    assert "  A kitten naps on the couch.   " + " 0.800  1.000  0.600  0.360" in out
    assert "20 single-text predictions submitted back to back finished in " in out
    assert out.endswith("s (0 unfinished)\n")


def test_demo_failures_are_one_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1"
    lost = APIConnectionError("could not reach 127.0.0.1:1: refused (after 6 attempts)", attempts=6)
    assert demo.failure_message(lost, url, tmp_path) == (
        f"the local stack at {url} stopped answering (APIConnectionError): is `make run` still running?"
    )
    refused = AuthenticationError("invalid API key", status_code=401, code="invalid_api_key")
    assert demo.failure_message(refused, url, tmp_path).startswith(
        f"the API at {url} refused the key in {tmp_path}/api-key (invalid API key (HTTP 401, invalid_api_key))"
    )
