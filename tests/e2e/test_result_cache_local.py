"""The result cache on the local stack: a repeated text comes back from the cache, not the model, bit for bit."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def test_a_repeated_submission_is_served_from_the_cache(stack: RunningStack) -> None:
    text = f"A content-addressed cache answers this sentence {uuid.uuid4()} the second time."
    other = f"And computes this one {uuid.uuid4()} afresh."
    with stack.api() as api:
        first = api.post("/v1/predictions", json={"inputs": text}, headers={"Prefer": "wait=20"})
        assert first.json()["status"] == "succeeded", first.text
        invoked = stack.endpoint("/_local/stats")["invocations"]

        # A waiting caller whose texts are all cached is answered at submit: no queue, no endpoint.
        again = api.post("/v1/predictions", json={"inputs": text}, headers={"Prefer": "wait=20"})
        assert stack.endpoint("/_local/stats")["invocations"] == invoked

        # Fire and forget, one cached text and one new: only the new one goes to the model.
        mixed = api.post("/v1/predictions", json={"inputs": [other, text]})
        mixed_done = stack.wait_for(api, mixed.json()["id"])

        # Opted out: computed by the model again.
        bypass = api.post("/v1/predictions", json={"inputs": text}, headers={"Cache-Control": "no-store"})
        bypass_done = stack.wait_for(api, bypass.json()["id"])

    assert again.status_code == 200
    assert again.json()["status"] == "succeeded"
    assert again.json()["output"] == first.json()["output"]  # bit for bit: float32 values print the same
    assert mixed_done["status"] == "succeeded"
    assert mixed_done["output"]["embeddings"][1] == first.json()["output"]["embeddings"][0]
    assert len(mixed_done["output"]["embeddings"]) == 2
    assert bypass_done["status"] == "succeeded"
    assert np.allclose(bypass_done["output"]["embeddings"][0], first.json()["output"]["embeddings"][0], atol=1e-5)
