from __future__ import annotations

import json

import pytest

from inference_core import cli
from inference_core.errors import AuthenticationError
from inference_core.logic.auth import authenticate
from local_stack.provision import Stack


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
