"""GET /v1/webhooks/secret and its rotation: one secret per tenant, both signing for 24 h after a rotation."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from inference_core.dal.webhook_secrets import webhook_secret_store
from inference_core.domain.clock import utc_now
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.usefixtures("aws")


def test_each_tenant_has_one_secret_in_the_whsec_format(pipeline: Pipeline) -> None:
    acme = pipeline.headers("acme")
    first = pipeline.api.get("/v1/webhooks/secret", headers=acme).json()
    again = pipeline.api.get("/v1/webhooks/secret", headers=acme).json()
    other = pipeline.api.get("/v1/webhooks/secret", headers=pipeline.headers("globex")).json()

    assert first == again
    assert first["secret"].startswith("whsec_")
    assert len(base64.b64decode(first["secret"].removeprefix("whsec_"))) >= 24
    assert other["secret"] != first["secret"]
    assert first["previous_valid_until"] is None


def test_a_rotation_signs_with_both_secrets_for_a_day_then_one(pipeline: Pipeline) -> None:
    headers = pipeline.headers("acme")
    old = pipeline.api.get("/v1/webhooks/secret", headers=headers).json()["secret"]
    rotated = pipeline.api.post("/v1/webhooks/secret/rotate", headers=headers).json()

    assert rotated["secret"] != old
    assert rotated["previous_valid_until"] is not None
    assert pipeline.api.get("/v1/webhooks/secret", headers=headers).json()["secret"] == rotated["secret"]
    secrets = webhook_secret_store().get("acme")
    assert secrets is not None
    now = utc_now()
    assert secrets.in_use(now) == [rotated["secret"], old]
    assert secrets.in_use(now + timedelta(hours=25)) == [rotated["secret"]]


def test_the_secret_needs_a_key(pipeline: Pipeline) -> None:
    assert pipeline.api.get("/v1/webhooks/secret").status_code == 401
    assert pipeline.api.post("/v1/webhooks/secret/rotate").status_code == 401
