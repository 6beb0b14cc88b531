"""The README's operator commands, typed into a shell that has only `source`d the env file `make run` wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.runner import read_env_file
from tests.e2e.conftest import RunningStack, source_roots_env

pytestmark = pytest.mark.e2e


def state_dir(stack: RunningStack) -> Path:
    """Where the running stack wrote api-key and env (its --state-dir)."""
    args = [str(a) for a in stack.process.args]
    return Path(args[args.index("--state-dir") + 1])


def in_a_fresh_shell(stack: RunningStack, command: str) -> subprocess.CompletedProcess[str]:
    """`bash -c 'set -e; source <state>/env; <command>'` with none of the env file's variables set beforehand, and
    the virtualenv's python first on PATH (as after `source .venv/bin/activate`)."""
    env_file = state_dir(stack) / "env"
    provided = set(read_env_file(env_file))
    env = {k: v for k, v in source_roots_env().items() if k not in provided and not k.startswith("AWS_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", f'set -e; source "$1"; {command}', "bash", str(env_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_key_created_after_sourcing_the_env_file_authenticates(stack: RunningStack) -> None:
    created = in_a_fresh_shell(stack, "python -m inference_core.cli create-key --tenant acme")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["tenant"] == "acme"

    with stack.api(key["api_key"]) as api:
        assert api.get("/v1/predictions").status_code == 200

    listed = in_a_fresh_shell(stack, "python -m inference_core.cli list-keys --tenant acme --json")
    assert listed.returncode == 0, listed.stderr
    assert key["key_id"] in {row["key_id"] for row in json.loads(listed.stdout)}
    assert key["api_key"].split(".", 1)[1] not in listed.stdout
