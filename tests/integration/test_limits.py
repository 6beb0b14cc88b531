"""Per-tenant limits over moto: requests and inputs per minute with OpenAI's rate-limit headers on every reply, 429s
that create nothing, open bulk jobs, the operator's set-limits, and counting shared by every API instance."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.dynamodb.responses import DynamoHandler

from inference_core import cli
from inference_core.dal.jobs import job_store
from inference_core.dal.limits import limit_store
from inference_core.domain.limits import TenantLimits, window_start
from inference_core.errors import RateLimitedError
from inference_core.logic import jobs, limits
from tests.integration.conftest import Pipeline
from tests.integration.test_openai_batches import create_batch, file_id_of, request_line

pytestmark = pytest.mark.usefixtures("aws")


def set_limits(tenant: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert cli.main(["set-limits", "--tenant", tenant, *args]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


def queued(pipeline: Pipeline) -> int:
    return len(pipeline.receive("RequestQueue"))


def test_a_burst_over_the_request_limit_gets_429s_with_headers_and_creates_nothing(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = pipeline.headers("burst")
    set_limits("burst", capsys, "--requests-per-minute", "3")

    replies = [pipeline.api.post("/v1/predictions", json={"inputs": f"t{n}"}, headers=headers) for n in range(5)]

    assert [r.status_code for r in replies] == [202, 202, 202, 429, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in replies] == ["2", "1", "0", "0", "0"]
    refused = replies[3]
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert queued(pipeline) == 3  # the refused ones queued nothing
    # another tenant is not held back
    other = pipeline.api.post("/v1/predictions", json={"inputs": "x"}, headers=pipeline.headers("calm"))
    assert other.status_code == 202


def test_every_reply_says_where_the_tenant_stands(pipeline: Pipeline) -> None:
    headers = pipeline.headers()

    listed = pipeline.api.get("/v1/predictions", headers=headers)
    models = pipeline.api.get("/v1/models", headers=headers)

    for reply in (listed, models):
        assert reply.headers["x-ratelimit-limit-requests"] == "12000"
        assert reply.headers["x-ratelimit-limit-tokens"] == reply.headers["x-ratelimit-limit-inputs"] == "1200000"
    assert 0 < int(models.headers["x-ratelimit-remaining-requests"]) < 12000
    assert "x-ratelimit-limit-requests" not in pipeline.api.get("/health").headers


def test_inputs_are_counted_per_minute_and_a_request_larger_than_the_minute_is_400(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = pipeline.headers("inputs")
    set_limits("inputs", capsys, "--inputs-per-minute", "5")

    first = pipeline.api.post("/v1/predictions", json={"inputs": ["a", "b", "c"]}, headers=headers)
    second = pipeline.api.post("/v1/predictions", json={"inputs": ["d", "e", "f"]}, headers=headers)
    third = pipeline.api.post("/v1/predictions", json={"inputs": ["g", "h"]}, headers=headers)
    too_large = pipeline.api.post("/v1/predictions", json={"inputs": ["x"] * 6}, headers=headers)
    openai = pipeline.api.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["y"]}, headers=headers)

    assert first.status_code == 202
    assert first.headers["x-ratelimit-remaining-inputs"] == "2"
    assert second.status_code == 429
    assert "inputs per minute" in second.json()["error"]["message"]
    assert third.status_code == 202
    assert too_large.status_code == 400
    assert openai.status_code == 429  # OpenAI's envelope, which the SDK retries after Retry-After
    assert openai.json()["error"]["type"] == "rate_limit_exceeded"
    assert "x-should-retry" not in openai.headers
    assert queued(pipeline) == 2


def test_open_jobs_are_limited_for_jobs_and_batches_alike(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = pipeline.headers("jobs")
    set_limits("jobs", capsys, "--open-jobs", "1")
    file_id = file_id_of(pipeline, headers, [request_line("a")])

    first = pipeline.api.post("/v1/jobs", json={}, headers=headers)
    second = pipeline.api.post("/v1/jobs", json={}, headers=headers)
    batch = create_batch(pipeline, headers, file_id)

    assert first.status_code == 201
    assert second.status_code == 429
    assert "open" in second.json()["error"]["message"]
    assert batch.status_code == 429
    assert len(pipeline.api.get("/v1/jobs", headers=headers).json()["data"]) == 1
    assert pipeline.api.get("/v1/batches", headers=headers).json()["data"] == []


def test_concurrent_creates_never_open_more_jobs_than_the_limit(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_limits("racing", capsys, "--open-jobs", "2")
    # DynamoDB runs each request atomically; in-process moto does not (a transaction copies a table that another
    # thread changes), so its requests go one at a time here, as the local stack's moto server runs them.
    one_at_a_time = threading.Lock()
    call_action = DynamoHandler.call_action

    def serialized(self: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
        with one_at_a_time:
            return call_action(self, *args, **kwargs)

    monkeypatch.setattr(DynamoHandler, "call_action", serialized)

    def create(_: int) -> str:
        try:
            jobs.create("racing", metadata={}, webhook=None, dry_run=False)
            return "created"
        except RateLimitedError:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:  # eight API instances at once
        outcomes = list(pool.map(create, range(8)))

    assert sorted(outcomes) == ["created"] * 2 + ["refused"] * 6
    assert len(pipeline.api.get("/v1/jobs", headers=pipeline.headers("racing")).json()["data"]) == 2


def test_a_finished_job_makes_room_for_the_next_one(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    headers = pipeline.headers("turns")
    set_limits("turns", capsys, "--open-jobs", "1")
    first = pipeline.api.post("/v1/jobs", json={}, headers=headers).json()
    assert pipeline.api.post("/v1/jobs", json={}, headers=headers).status_code == 429

    assert pipeline.api.post(f"/v1/jobs/{first['id']}/cancel", headers=headers).status_code == 200
    second = pipeline.api.post("/v1/jobs", json={}, headers=headers)
    third = pipeline.api.post("/v1/jobs", json={}, headers=headers)

    assert second.status_code == 201, second.text
    assert third.status_code == 429
    assert list(job_store().open_jobs("turns")) == [second.json()["id"]]  # the finished one left the set


def test_a_job_older_than_its_window_no_longer_holds_a_place(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    set_limits("stale", capsys, "--open-jobs", "1")
    window = timedelta(hours=int(pipeline.stack.env["JOB_COMPLETION_WINDOW_HOURS"]) + 1, minutes=1)
    jobs.create("stale", metadata={}, webhook=None, dry_run=False, now=datetime.now(UTC) - window)

    jobs.create("stale", metadata={}, webhook=None, dry_run=False)

    assert len(job_store().open_jobs("stale")) == 1


def test_set_limits_overrides_and_resets_one_limit_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    changed = set_limits(
        "ops", capsys, "--requests-per-minute", "10", "--open-jobs", "2", "--interactive-inputs-per-minute", "5"
    )
    reset = set_limits("ops", capsys, "--reset", "requests-per-minute")

    defaults = {
        "tenant": "ops",
        "inputs_per_minute": 1200000,
        "open_jobs": 2,
        "interactive_inputs_per_minute": 5,
        "queued_inputs": 200000,
    }
    assert changed == {**defaults, "requests_per_minute": 10}
    assert reset == {**defaults, "requests_per_minute": 12000}
    with pytest.raises(SystemExit):
        cli.main(["set-limits", "--tenant", "ops", "--open-jobs", "0"])


def test_two_api_instances_share_one_count_and_a_new_window_starts_afresh() -> None:
    # Two instances are two processes with caches of their own; the count lives in DynamoDB, so both see it.
    tight = TenantLimits(
        requests_per_minute=4, inputs_per_minute=100, open_jobs=1, interactive_inputs_per_minute=50, queued_inputs=10
    )
    window = window_start(datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC))
    store_a, store_b = limit_store(), type(limit_store())(limit_store().table)

    results = [(store_a if n % 2 else store_b).count("shared", window, 1, tight) for n in range(7)]
    later = store_a.count("shared", window + timedelta(minutes=1), 1, tight)

    assert [r.refused is None for r in results] == [True] * 4 + [False] * 3
    assert [r.requests for r in results[:4]] == [1, 2, 3, 4]
    assert later.refused is None
    assert later.requests == 1


def test_a_refused_request_says_when_to_come_back() -> None:
    now = datetime(2026, 12, 6, 12, 0, 45, tzinfo=UTC)
    limits.set_limits("late", {"requests_per_minute": 1})
    limits.admit("late", now=now)

    with pytest.raises(RateLimitedError) as refused:
        limits.admit("late", now=now)

    assert refused.value.retry_after == 15
    assert refused.value.headers["x-ratelimit-reset-requests"] == "15s"
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_busy_process_takes_an_allowance_and_spends_it_without_a_write_each(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    set_limits("busy", capsys, "--requests-per-minute", "4000", "--inputs-per-minute", "100000")
    now = datetime(2026, 12, 6, 12, 0, 5, tzinfo=UTC)
    writes: list[int] = []
    store = limit_store()
    real_count = store.count

    def counted(*args: Any, **kwargs: Any) -> Any:
        writes.append(1)
        return real_count(*args, **kwargs)

    store.count = counted  # type: ignore[method-assign]
    states = [limits.admit("busy", 2, now) for _ in range(45)]

    assert limits.lease_size(4000) == 20
    assert len(writes) == 3  # 45 requests in allowances of 20
    assert states[-1].requests == 60  # what the three allowances took counts for every instance
    assert states[-1].inputs == 3 * (2 + 500)


def test_an_allowance_never_lets_the_minute_pass_its_limit(capsys: pytest.CaptureFixture[str]) -> None:
    set_limits("edge", capsys, "--requests-per-minute", "410")
    now = datetime(2026, 12, 6, 12, 0, 5, tzinfo=UTC)

    admitted = 0
    for _ in range(500):
        try:
            limits.admit("edge", 0, now)
            admitted += 1
        except RateLimitedError:
            pass

    assert limits.lease_size(410) == 2
    assert admitted == 410  # the last allowance that did not fit was counted one request at a time
