"""Tenant limits across API instances: a second API process beside the local stack's, both counting one tenant's
requests; together they admit no more than the limit plus one window's slack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from local_stack.runner import free_port
from tests.e2e.conftest import REPO, RunningStack, source_roots_env

pytestmark = pytest.mark.e2e
LIMIT = 10


@pytest.fixture(scope="module")
def second_api(stack: RunningStack) -> Iterator[str]:
    port = free_port("127.0.0.1")
    serve = (
        "import uvicorn; from inference_api.app import create_app; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", serve], cwd=REPO, env={**source_roots_env(), **stack.env, "ALLOW_LOOPBACK_WEBHOOKS": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "the second API exited"
        assert time.monotonic() < deadline, "the second API did not start"
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_two_api_instances_together_admit_the_limit_and_no_more(stack: RunningStack, second_api: str) -> None:
    tenant = f"limits-{uuid.uuid4().hex[:8]}"
    key = stack.create_key(tenant)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "inference_core.cli",
            "set-limits",
            "--tenant",
            tenant,
            "--requests-per-minute",
            str(LIMIT),
        ],
        env={**source_roots_env(), **stack.env},
        check=True,
        capture_output=True,
    )
    if datetime.now(UTC).second > 45:  # start the burst well inside one window
        time.sleep(61 - datetime.now(UTC).second)
    urls = [stack.env["API_URL"], second_api]
    headers = {"Authorization": f"Bearer {key}"}

    def call(n: int) -> httpx.Response:
        return httpx.get(f"{urls[n % 2]}/v1/models", headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(call, range(4 * LIMIT)))

    admitted = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    assert len(admitted) + len(refused) == len(replies)
    assert LIMIT <= len(admitted) <= 2 * LIMIT  # the limit, plus one window's slack should the burst cross a minute
    assert {str(r.url).startswith(second_api) for r in admitted} == {True, False}  # both instances admitted some
    assert all(r.headers["x-ratelimit-remaining-requests"] == "0" for r in refused)
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    assert json.loads(refused[0].content)["error"]["type"] == "rate_limit_exceeded"
