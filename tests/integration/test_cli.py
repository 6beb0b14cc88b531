from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_type_hints

import pytest

from inference_core import cli
from inference_core.dal.clients import reset_clients
from inference_core.errors import AuthenticationError
from inference_core.logic.auth import authenticate
from inference_core.settings import Settings, get_settings
from local_stack.provision import Stack
from local_stack.runner import free_port

REPO = Path(__file__).resolve().parents[2]


def test_a_created_key_authenticates_until_it_is_revoked(aws: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["create-key", "--tenant", "acme", "--name", "laptop"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert authenticate(created["api_key"]) == "acme"

    assert cli.main(["revoke-key", created["key_id"]]) == 0
    with pytest.raises(AuthenticationError):
        authenticate(created["api_key"])


def test_revoking_an_unknown_key_fails(aws: Stack) -> None:
    assert cli.main(["revoke-key", "0000000000000000"]) == 1


def test_an_invalid_tenant_is_refused(aws: Stack) -> None:
    with pytest.raises(SystemExit):
        cli.main(["create-key", "--tenant", "bad tenant!"])


def test_list_keys_shows_ids_tenants_and_revocations_but_never_secrets(
    aws: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["create-key", "--tenant", "acme", "--name", "laptop"]) == 0
    acme = json.loads(capsys.readouterr().out)
    assert cli.main(["create-key", "--tenant", "globex"]) == 0
    globex = json.loads(capsys.readouterr().out)
    assert cli.main(["revoke-key", globex["key_id"]]) == 0
    capsys.readouterr()

    assert cli.main(["list-keys", "--json"]) == 0
    listed = {row["key_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(listed) == {acme["key_id"], globex["key_id"]}
    assert set(listed[acme["key_id"]]) == {"key_id", "tenant", "name", "created_at", "revoked_at"}
    assert listed[acme["key_id"]]["tenant"] == "acme"
    assert listed[acme["key_id"]]["name"] == "laptop"
    assert listed[acme["key_id"]]["revoked_at"] is None
    assert listed[globex["key_id"]]["revoked_at"] is not None

    assert cli.main(["list-keys", "--tenant", "acme", "--json"]) == 0
    assert [row["key_id"] for row in json.loads(capsys.readouterr().out)] == [acme["key_id"]]

    assert cli.main(["list-keys"]) == 0
    table = capsys.readouterr().out
    header, *rows = table.splitlines()
    assert header.split() == ["KEY", "ID", "TENANT", "NAME", "CREATED", "AT", "REVOKED", "AT"]
    assert len(rows) == 2
    assert any(acme["key_id"] in row and "laptop" in row for row in rows)
    secret = acme["api_key"].split(".", 1)[1]
    assert secret not in table
    assert "hash" not in table.lower()


def test_list_keys_with_none_says_so(aws: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list-keys", "--tenant", "nobody"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no API keys for tenant nobody" in captured.err

    assert cli.main(["list-keys", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_without_settings_it_says_to_source_the_env_file(capsys: pytest.CaptureFixture[str]) -> None:
    # No `aws` fixture: TABLE_NAME and the other names are unset, as in a shell that did not `source .local/env`.
    assert "TABLE_NAME" not in os.environ
    for command in (["create-key", "--tenant", "acme"], ["list-keys"], ["revoke-key", "0000000000000000"]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("error: missing environment variable(s) ")
        assert "TABLE_NAME" in err
        assert "(did you `source .local/env`?)" in err


def test_an_unreachable_aws_endpoint_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every setting present (as after `source .local/env`), but nothing listens at the endpoint (a stopped stack).
    types = get_type_hints(Settings)
    for field in dataclasses.fields(Settings):
        if field.default is dataclasses.MISSING:
            monkeypatch.setenv(field.name.upper(), "1" if types[field.name] in (int, float) else "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    endpoint = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    get_settings.cache_clear()
    reset_clients()

    assert cli.main(["list-keys"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: could not list API keys (EndpointConnectionError: ")
    assert f"is the local stack at {endpoint} running?" in err


def test_the_module_run_as_a_command_fails_cleanly_without_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TABLE_NAME" and not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / p) for p in (".", "layers", "api"))
    result = subprocess.run(
        [sys.executable, "-m", "inference_core.cli", "list-keys"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: missing environment variable(s) ")
    assert result.stderr.strip().endswith("(did you `source .local/env`?)")
