"""GET /v1/usage over moto: what was run, counted once however often completions and chunk notifications arrive,
with cache hits, bulk lines and the endpoint's time priced; the operator's `usage` command shows the same."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from inference_core import cli
from inference_core.dal.batches import batch_store
from inference_core.dal.usage import UsageStore, usage_store
from inference_core.domain.clock import utc_now
from inference_core.errors import TransientError
from inference_core.logic import dispatch
from inference_core.logic.dispatch import QueuedMessage
from inference_core.logic.sweeper import sweep as sweep_stuck
from inference_core.logic.usage import PROMISE_GRACE
from inference_core.settings import get_settings
from tests.integration.conftest import Pipeline
from tests.integration.test_jobs import JobDriver, create_job, get_job, good_lines, jsonl, upload
from tests.integration.test_outbox import sweep
from tests.integration.test_sweeper import past_the_invocation_timeout

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def driver(pipeline: Pipeline) -> JobDriver:
    return JobDriver(pipeline)


def usage_today(pipeline: Pipeline, headers: dict[str, str]) -> dict[str, Any]:
    response = pipeline.api.get("/v1/usage", headers=headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report["granularity"] == "day"
    assert [d["date"] for d in report["data"]] == [utc_now().date().isoformat()]
    return report["data"][0]


def test_predictions_are_counted_once_however_often_their_completion_is_delivered(pipeline: Pipeline) -> None:
    headers = pipeline.headers("counted")
    pipeline.submit(headers, ["one text", "two texts"])
    pipeline.dispatch()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    pipeline.publish("SuccessTopic", notification)  # SNS delivers it again
    pipeline.complete()
    day = usage_today(pipeline, headers)

    assert day["predictions"] == 1
    assert day["inputs"] == 2
    assert day["tokens"] > 2
    assert day["cache_hits"] == 0
    assert day["endpoint_seconds"] > 0
    assert day["cost_usd"] > 0
    assert day["bulk_lines"] == 0
    assert usage_today(pipeline, pipeline.headers("someone-else"))["predictions"] == 0


def test_texts_answered_by_the_cache_count_as_hits_in_every_path(pipeline: Pipeline) -> None:
    headers = pipeline.headers("cached")
    pipeline.run_all(headers, ["a repeated text"])  # computed, then cached
    pipeline.submit(headers, ["a repeated text"])  # the dispatcher answers it whole, without the endpoint
    pipeline.dispatch()
    waited = pipeline.api.post(
        "/v1/predictions", json={"inputs": ["a repeated text"]}, headers={**headers, "Prefer": "wait=1"}
    )  # answered at submit

    day = usage_today(pipeline, headers)

    assert waited.status_code == 200, waited.text
    assert (day["predictions"], day["inputs"], day["cache_hits"]) == (3, 3, 2)


def test_a_caller_answered_at_submit_is_counted_with_its_record_or_not_at_all(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers("retries")
    pipeline.run_all(headers, ["a repeated text"])  # computed, then cached
    waiting = {**headers, "Prefer": "wait=1", "Idempotency-Key": "retried-call"}
    update = UsageStore.update

    def failing(self: UsageStore, *args: Any) -> dict[str, Any]:
        write = update(self, *args)
        write["Update"]["ConditionExpression"] = "attribute_exists(no_such_attribute)"
        return write

    with monkeypatch.context() as patched:
        patched.setattr(UsageStore, "update", failing)
        failed = pipeline.api.post("/v1/predictions", json={"inputs": ["a repeated text"]}, headers=waiting)
    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]
    retried = [
        pipeline.api.post("/v1/predictions", json={"inputs": ["a repeated text"]}, headers=waiting) for _ in range(2)
    ]

    day = usage_today(pipeline, headers)

    assert failed.status_code >= 500
    assert len(listed) == 1  # the first one's: no record without its usage
    assert [r.status_code for r in retried] == [200, 200]
    assert retried[0].json()["id"] == retried[1].json()["id"]
    assert (day["predictions"], day["cache_hits"]) == (2, 1)


def test_bulk_lines_are_counted_once_per_chunk_after_duplicate_notifications(
    pipeline: Pipeline, driver: JobDriver
) -> None:
    headers = pipeline.headers("bulk")
    job = create_job(pipeline, headers)
    upload(job, jsonl([*good_lines(3), {"custom_id": "bad", "inputs": ""}]))
    driver.intake()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[0])
    driver.answered.add(pipeline.invocations[0].inference_id)
    pipeline.publish("SuccessTopic", notification)  # twice
    driver.run()

    day = usage_today(pipeline, headers)

    assert get_job(pipeline, headers, job["id"])["status"] == "completed"
    assert (day["bulk_lines"], day["inputs"], day["predictions"]) == (3, 3, 0)
    assert day["tokens"] > 0


def test_the_operator_reads_the_same_figures_and_bad_ranges_are_refused(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = pipeline.headers("ops-view")
    pipeline.run_all(headers, "counted once")
    today = utc_now().date().isoformat()

    assert cli.main(["usage", "--tenant", "ops-view", "--start", today]) == 0
    out = capsys.readouterr().out.splitlines()
    printed = json.loads(next(line for line in out if line.startswith('{"tenant"')))
    backwards = pipeline.api.get("/v1/usage", params={"start": today, "end": "2020-01-01"}, headers=headers)
    too_long = pipeline.api.get("/v1/usage", params={"start": "2020-01-01", "end": today}, headers=headers)
    not_a_date = pipeline.api.get("/v1/usage", params={"start": "yesterday"}, headers=headers)
    other_granularity = pipeline.api.get("/v1/usage", params={"granularity": "hour"}, headers=headers)

    assert printed["data"][0]["predictions"] == 1
    assert printed["data"][0]["date"] == today
    assert backwards.status_code == 400
    assert too_long.status_code == 400
    assert not_a_date.status_code == 422
    assert other_granularity.status_code == 422


def test_a_completion_that_died_after_its_writes_is_counted_by_the_next_delivery(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers("crash")
    pipeline.submit(headers, ["x"])
    pipeline.dispatch()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[-1])
    with monkeypatch.context() as down:
        down.setattr(UsageStore, "record_once", _unavailable)
        failed = pipeline.complete()
    assert failed["batchItemFailures"]  # the message comes back

    pipeline.publish("SuccessTopic", notification)
    pipeline.complete()
    pipeline.publish("SuccessTopic", notification)
    pipeline.complete()

    assert usage_today(pipeline, headers)["predictions"] == 1


def _unavailable(*_: object, **__: object) -> bool:
    raise TransientError("DynamoDB is throttling")


def test_a_batch_the_cache_answered_whole_is_counted_by_the_sweeper_when_its_dispatcher_died_before_counting(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers("dispatcher-died")
    pipeline.run_all(headers, ["a repeated text"])  # computed, then cached
    pipeline.submit(headers, ["a repeated text"])  # answered whole by the dispatcher
    with monkeypatch.context() as dying:
        dying.setattr(UsageStore, "record_once", _died)
        with pytest.raises(RuntimeError):
            dispatch.dispatch([QueuedMessage(m["MessageId"], m["Body"], 1) for m in pipeline.receive("RequestQueue")])
    assert [p["status"] for p in pipeline.api.get("/v1/predictions", headers=headers).json()["data"]] == [
        "succeeded",
        "succeeded",
    ]
    assert usage_today(pipeline, headers)["predictions"] == 1  # the second one's count died with the dispatcher

    sweep(pipeline, monkeypatch)  # not due yet: a live dispatcher is still counting it
    assert usage_today(pipeline, headers)["predictions"] == 1
    sweep(pipeline, monkeypatch, later=PROMISE_GRACE + timedelta(seconds=1))
    sweep(pipeline, monkeypatch, later=PROMISE_GRACE * 3)
    day = usage_today(pipeline, headers)

    assert (day["predictions"], day["inputs"], day["cache_hits"]) == (2, 2, 1)


def test_a_promised_batch_counted_by_its_dispatcher_is_not_counted_again_by_the_sweeper(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers("dispatcher-lived")
    pipeline.run_all(headers, ["a repeated text"])
    pipeline.submit(headers, ["a repeated text"])
    pipeline.dispatch()

    sweep(pipeline, monkeypatch, later=PROMISE_GRACE + timedelta(seconds=1))
    day = usage_today(pipeline, headers)

    assert (day["predictions"], day["cache_hits"]) == (2, 1)
    assert usage_store().promised_due(utc_now() + PROMISE_GRACE * 2, 10) == []  # the promise is kept, and gone


def _died(*_: object, **__: object) -> bool:
    raise RuntimeError("the function timed out here")


@pytest.mark.parametrize("deliveries", [1, 2])
def test_a_part_cached_batch_without_a_record_counts_its_cache_hits(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, deliveries: int
) -> None:
    headers = pipeline.headers(f"unrecorded-{deliveries}")
    pipeline.run_all(headers, ["a repeated text"])  # computed, then cached
    pipeline.submit(headers, ["a repeated text", "a new text", "another new text"])
    with monkeypatch.context() as patch:  # the endpoint was faster than the batch record's write, which failed
        patch.setattr(batch_store(), "put", _throttled)
        pipeline.dispatch()
    notification = pipeline.endpoint_succeeds(pipeline.invocations[-1])
    if deliveries == 2:  # the first completion died after its writes, before counting
        with monkeypatch.context() as down:
            down.setattr(UsageStore, "record_once", _unavailable)
            pipeline.complete()
        pipeline.publish("SuccessTopic", notification)
    pipeline.complete()
    day = usage_today(pipeline, headers)

    assert (day["predictions"], day["inputs"], day["cache_hits"]) == (2, 4, 1)
    assert day["endpoint_seconds"] == pytest.approx(3 / get_settings().endpoint_items_per_second, rel=0.05)


def _throttled(*_: object, **__: object) -> None:
    raise TransientError("throttled", reason="ThrottlingException")


def test_a_single_text_counts_its_endpoint_time_and_days_kept_in_milliseconds_still_read(pipeline: Pipeline) -> None:
    headers = pipeline.headers("one-text")
    pipeline.run_all(headers, ["just one text"])
    one_text = usage_today(pipeline, headers)["endpoint_seconds"]
    store = usage_store()
    store.table.client.update_item(  # a day counted before usage moved to microseconds
        TableName=store.table.name,
        Key={"pk": {"S": f"USAGE#one-text#{utc_now().date().isoformat()}"}},
        UpdateExpression="ADD endpoint_ms :ms",
        ExpressionAttributeValues={":ms": {"N": "2000"}},
    )

    day = usage_today(pipeline, headers)

    assert one_text == pytest.approx(1 / get_settings().endpoint_items_per_second, rel=0.01)
    assert day["endpoint_seconds"] == pytest.approx(2 + one_text)
    assert day["cost_usd"] > 0


@pytest.mark.parametrize("path", ["no batch record", "notification lost"])
def test_whole_cache_hits_sharing_a_batch_with_misses_are_counted_on_every_path(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    headers = pipeline.headers(f"mixed-{path.split()[0]}")
    pipeline.run_all(headers, ["a repeated text"])  # computed, then cached
    pipeline.submit(headers, ["a repeated text"])  # answered whole by the dispatcher, in the batch of the next
    pipeline.submit(headers, ["a new text"])
    with monkeypatch.context() as patch:
        if path == "no batch record":  # the endpoint was faster than the record's write, which failed
            patch.setattr(batch_store(), "put", _throttled)
        pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    if path == "notification lost":  # the sweeper finishes the batch from its output
        assert pipeline.lose_notifications() == 1
        sweep_stuck(past_the_invocation_timeout(pipeline))
    else:
        pipeline.complete()
    day = usage_today(pipeline, headers)

    assert [p["status"] for p in pipeline.api.get("/v1/predictions", headers=headers).json()["data"]] == [
        "succeeded"
    ] * 3
    assert (day["predictions"], day["inputs"], day["cache_hits"]) == (3, 3, 1)
