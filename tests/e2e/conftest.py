"""Starts `python -m local_stack` on free ports, as a user would, and drives it only over HTTP and boto3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from local_stack.runner import free_port, read_env_file

REPO = Path(__file__).resolve().parents[2]
MAX_RECEIVE_COUNT = 2
# Retries in seconds, yet longer than a dispatcher call on a loaded 2-core machine: a shorter one makes SQS hand a
# message to a second dispatcher while the first still holds it, which uses up deliveries.
VISIBILITY_TIMEOUT_SECONDS = 6
INVOCATION_TIMEOUT_SECONDS = 30


def source_roots_env() -> dict[str, str]:
    """The environment for a child Python that imports the repo's packages (as the Makefile's .pth does)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in (".", "layers", "api", "model"))}


@dataclass
class RunningStack:
    env: dict[str, str]
    api_key: str
    process: subprocess.Popen[bytes]

    def api(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.env["API_URL"], headers={"Authorization": f"Bearer {key or self.api_key}"}, timeout=30
        )

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.env["AWS_REGION"],
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_key(self, tenant: str) -> str:
        """The operator's command, run against the stack like a user would."""
        result = subprocess.run(
            [sys.executable, "-m", "inference_core.cli", "create-key", "--tenant", tenant],
            env={**source_roots_env(), **self.env},
            capture_output=True,
            check=True,
        )
        return str(json.loads(result.stdout)["api_key"])

    def endpoint(self, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.env["LOCAL_SAGEMAKER_URL"] + path
        response = httpx.post(url, json=json) if json is not None else httpx.get(url)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_for(self, client: httpx.Client, prediction_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            prediction: dict[str, Any] = client.get(f"/v1/predictions/{prediction_id}").json()
            if prediction["status"] not in {"queued", "running"} or time.monotonic() > deadline:
                return prediction
            time.sleep(0.2)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    yield from start_stack(tmp_path_factory.mktemp("local-stack"))


def start_stack(state: Path, *extra: str) -> Iterator[RunningStack]:
    """`python -m local_stack` with the e2e settings (and `extra` arguments) until the generator is closed."""
    port = free_port("127.0.0.1")
    log = (state / "stack.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_stack",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--visibility-timeout",
            str(VISIBILITY_TIMEOUT_SECONDS),
            "--batching-window",
            "0.5",
            "--param",
            f"MaxReceiveCount={MAX_RECEIVE_COUNT}",
            # Short enough that the sweeper's test waits seconds, long enough for any batch on a busy CPU.
            "--param",
            f"InvocationTimeoutSeconds={INVOCATION_TIMEOUT_SECONDS}",
            "--param",
            "SweepMarginSeconds=1",
            "--schedule-interval",
            "1",
            *extra,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=source_roots_env(),
    )
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited: {(state / 'stack.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("local stack did not become healthy")
        time.sleep(0.3)
    running = RunningStack(read_env_file(state / "env"), (state / "api-key").read_text().strip(), process)
    yield running
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log.close()
    # Clean stop: the model server child went with the stack.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
