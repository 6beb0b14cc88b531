"""Schemathesis against the running local stack's /openapi.json: every operation, valid and schema-violating
requests, a bounded and seeded number of cases (the same ones on every run). No answer may be a 5xx, and every
answer must be one of the documented status codes, with the documented content type, headers and schema."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

SEED = 20261123
# Per operation, valid and schema-violating cases together; the coverage phase adds its boundary cases.
MAX_EXAMPLES = 100
DRAIN_SECONDS = 120
OPERATIONS = {
    "GET /health",
    "POST /v1/predictions",
    "GET /v1/predictions",
    "GET /v1/predictions/{prediction_id}",
    "POST /v1/predictions/{prediction_id}/cancel",
    "POST /v1/jobs",
    "GET /v1/jobs",
    "GET /v1/jobs/{job_id}",
    "POST /v1/jobs/{job_id}/cancel",
    "POST /v1/jobs/{job_id}/retry",
    "GET /v1/webhooks/secret",
    "POST /v1/webhooks/secret/rotate",
    "GET /v1/predictions/{prediction_id}/webhook_deliveries",
    "POST /v1/predictions/{prediction_id}/webhook_deliveries/redeliver",
    "GET /v1/jobs/{job_id}/webhook_deliveries",
    "POST /v1/jobs/{job_id}/webhook_deliveries/redeliver",
    "POST /v1/embeddings",
    "GET /v1/models",
    "GET /v1/models/{model}",
    "POST /v1/files",
    "GET /v1/files",
    "GET /v1/files/{file_id}",
    "GET /v1/files/{file_id}/content",
    "DELETE /v1/files/{file_id}",
    "POST /v1/batches",
    "GET /v1/batches",
    "GET /v1/batches/{batch_id}",
    "POST /v1/batches/{batch_id}/cancel",
    "GET /v1/usage",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# The API's own reading of `Prefer: wait=N` (routes/predictions.py): any N > 0 would hold the reply up to 20 s.
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*0*[1-9]", re.IGNORECASE)

cases_sent: Counter[str] = Counter()


@pytest.fixture(scope="module")
def fuzz_key(stack: RunningStack) -> Iterator[str]:
    """A tenant of its own: the fuzzer lists only its own predictions, and the other e2e tests never see them. On
    the way out, waits (bounded) until the model has finished what the fuzzer queued, so later tests start idle."""
    key = stack.create_key(f"fuzz-{uuid.uuid4().hex[:8]}")
    yield key
    deadline = time.monotonic() + DRAIN_SECONDS
    with stack.api(key) as api:
        while _unfinished(api) and time.monotonic() < deadline:
            time.sleep(0.5)


def _unfinished(api: httpx.Client) -> int:
    """How many of this tenant's predictions are still queued or running (every page, newest first)."""
    count, cursor = 0, None
    while True:
        page = api.get("/v1/predictions", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        count += sum(p["status"] in {"queued", "running"} for p in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return count


@pytest.fixture(scope="module")
def api_schema(stack: RunningStack, fuzz_key: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",  # positive (valid) and negative (schema-violating) requests
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                # No example database: no replay of an earlier run's failures, the same cases on every run.
                "database": "none",
                # The key goes on every request as is: no generated, corrupted or dropped Authorization header.
                "with-security-parameters": False,
            },
            # Each operation on its own: the stateful phase's chains of calls are not bounded per operation.
            "phases": {"stateful": {"enabled": False}},
            "headers": {"Authorization": f"Bearer {fuzz_key}"},
            "request-timeout": 30,
            # Generation time depends on the machine's load: never fail a CI run for it.
            "suppress-health-check": ["too_slow"],
        }
    )
    return schemathesis.openapi.from_url(f"{stack.env['API_URL']}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_answers_every_request_as_documented(case: schemathesis.Case) -> None:
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "prefer" and isinstance(value, str) and _PREFER_WAIT.search(value):
            case.headers[name] = "wait=0"  # keep the header, never the wait of up to 20 s
    cases_sent[case.operation.label] += 1
    case.call_and_validate(checks=CHECKS)


def test_fuzzing_reached_every_operation(capsys: pytest.CaptureFixture[str]) -> None:
    if not cases_sent:
        pytest.skip("the fuzz test did not run in this session")
    with capsys.disabled():
        print(f"\nschemathesis: {sum(cases_sent.values())} requests, by operation {dict(sorted(cases_sent.items()))}")
    assert set(cases_sent) == OPERATIONS
