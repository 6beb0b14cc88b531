"""The webhook outbox over moto: an event is written with the transition that causes it and stays on the record
until it is queued; a failed or interrupted queueing is made good by the sweeper, with the same webhook-id."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from functions.sweeper import handler as sweeper_handler
from inference_core.dal.jobs import OUTBOX_JOBS, job_store
from inference_core.dal.predictions import prediction_store
from inference_core.dal.webhook_events import EventMessage, WebhookEventQueue
from inference_core.domain.clock import utc_now
from inference_core.domain.webhooks import OUTBOX_GRACE, WebhookEvent, webhook_id
from inference_core.settings import get_settings
from tests.integration.conftest import Pipeline
from tests.integration.test_jobs import JobDriver, create_job, good_lines, jsonl, upload
from tests.integration.test_webhooks import Receiver, receiver, send_webhooks

pytestmark = pytest.mark.usefixtures("aws")
__all__ = ["receiver"]  # the fixture, used by name


def fail_queueing_once(monkeypatch: pytest.MonkeyPatch, event: str) -> list[str]:
    """The first SendMessageBatch carrying `event` is refused whole (SQS throttling); returns the webhook ids it
    refused."""
    real_send = WebhookEventQueue.send_many
    refused: list[str] = []

    def flaky(self: WebhookEventQueue, messages: list[EventMessage]) -> set[str]:
        if not refused and any(m.event == event for m in messages):
            refused.extend(m.webhook_id for m in messages)
            return set()
        return real_send(self, messages)

    monkeypatch.setattr(WebhookEventQueue, "send_many", flaky)
    return refused


def sweep(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, later: timedelta = timedelta(0)) -> dict[str, Any]:
    if later:
        at = utc_now() + later
        monkeypatch.setattr("inference_core.logic.sweeper.utc_now", lambda: at)
        monkeypatch.setattr("inference_core.logic.job_sweep.utc_now", lambda: at)
    result: dict[str, Any] = sweeper_handler.lambda_handler({}, pipeline.context)
    return result


def delivered(event: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [(h, json.loads(b)) for h, b in Receiver.seen if json.loads(b)["type"] == event]


def test_a_job_completed_event_whose_queueing_failed_is_delivered_after_the_next_sweep(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = fail_queueing_once(monkeypatch, "job.completed")
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver)
    upload(job, jsonl(good_lines(3)))
    JobDriver(pipeline).run()

    finished = job_store().get(job["id"])
    assert finished is not None
    assert finished.status.value == "completed"
    assert refused == [webhook_id(job["id"], WebhookEvent.JOB_COMPLETED)]
    assert pipeline.receive("WebhookQueue") == []  # nothing queued: the send failed after the finishing write
    assert [e.webhook_id for e in finished.outbox] == refused  # but the event is kept on the record

    sweep(pipeline, monkeypatch)
    send_webhooks(pipeline)

    [(delivery_headers, body)] = delivered("job.completed")
    assert delivery_headers["webhook-id"] == refused[0]
    assert body["data"]["id"] == job["id"]
    assert body["data"]["status"] == "completed"
    left = job_store().get(job["id"])
    assert left is not None
    assert left.outbox == ()
    assert job["id"] not in {j.id for j in job_store().active(partition=OUTBOX_JOBS)}  # out of the open index
    sweep(pipeline, monkeypatch, later=timedelta(hours=1))
    send_webhooks(pipeline)
    assert len(delivered("job.completed")) == 1  # delivered once: nothing left for later sweeps


def test_a_failed_progress_send_is_delivered_after_the_next_sweep(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    refused = fail_queueing_once(monkeypatch, "job.progress")
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver, webhook_events_filter=["progress", "completed"])
    upload(job, jsonl(good_lines(2)))
    driver.intake()
    driver.answer()
    pipeline.complete(pipeline.receive("CompletionQueue", max_messages=1))  # chunk 0 finishes; chunk 1 still out
    assert len(refused) == 1
    assert pipeline.receive("WebhookQueue") == []

    sweep(pipeline, monkeypatch)
    send_webhooks(pipeline)

    [(progress_headers, progress)] = delivered("job.progress")
    assert progress_headers["webhook-id"] == refused[0]
    assert progress["data"]["id"] == job["id"]
    assert progress["data"]["status"] == "in_progress"
    driver.run()
    send_webhooks(pipeline)
    assert sorted(json.loads(body)["type"] for _, body in Receiver.seen) == ["job.completed", "job.progress"]


def test_a_failed_progress_send_holds_nothing_up(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    refused = fail_queueing_once(monkeypatch, "job.progress")
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver, webhook_events_filter=["progress", "completed"])
    upload(job, jsonl(good_lines(4)))

    JobDriver(pipeline).run()  # no sweep: the job finishes on its own

    finished = job_store().get(job["id"])
    assert finished is not None
    assert finished.status.value == "completed"
    assert finished.outbox == ()
    send_webhooks(pipeline)
    # The progress event kept on the record went out with the completion's, each once.
    assert sorted(json.loads(body)["type"] for _, body in Receiver.seen) == ["job.completed", "job.progress"]
    assert delivered("job.progress")[0][0]["webhook-id"] == refused[0]


def test_an_event_written_but_never_queued_is_queued_by_the_sweeper_once_its_grace_has_passed(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The completion function dies right after the write that finished the prediction: nothing queues the event.
    monkeypatch.setattr("inference_core.logic.completion.outbox.flush", lambda records: 0)
    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello", webhook=receiver)
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    monkeypatch.undo()
    record = prediction_store().get(created["id"], consistent=True)
    assert record is not None
    assert record.status.value == "succeeded"
    assert len(record.outbox) == 1

    sweep(pipeline, monkeypatch)  # within the grace the writer may still queue it: the sweeper leaves it
    assert pipeline.receive("WebhookQueue") == []
    sweep(pipeline, monkeypatch, later=OUTBOX_GRACE + timedelta(seconds=1))
    send_webhooks(pipeline)

    [(delivery_headers, body)] = delivered("prediction.completed")
    assert delivery_headers["webhook-id"] == webhook_id(created["id"], WebhookEvent.PREDICTION_COMPLETED)
    assert body["data"]["id"] == created["id"]
    cleared = prediction_store().get(created["id"], consistent=True)
    assert cleared is not None
    assert cleared.outbox == ()
    assert created["id"] not in prediction_store().due_for_sweep(utc_now() + timedelta(days=1), 100)


def test_records_without_a_webhook_cost_no_outbox_write(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    created = pipeline.run_all(headers)
    record = prediction_store().get(created["id"], consistent=True)
    assert record is not None
    assert record.outbox == ()
    assert created["id"] not in prediction_store().due_for_sweep(utc_now() + timedelta(days=1), 100)
    assert pipeline.receive("WebhookQueue") == []


def test_a_started_event_left_on_the_record_goes_out_with_the_completion(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = fail_queueing_once(monkeypatch, "prediction.started")
    headers = pipeline.headers()
    created = pipeline.submit(headers, "hello", webhook=receiver, webhook_events_filter=["started", "completed"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    send_webhooks(pipeline)

    types = sorted(json.loads(body)["type"] for _, body in Receiver.seen)
    assert types == ["prediction.completed", "prediction.started"]
    assert delivered("prediction.started")[0][0]["webhook-id"] == refused[0]
    record = prediction_store().get(created["id"], consistent=True)
    assert record is not None
    assert record.outbox == ()


def test_a_job_whose_finishing_writer_died_is_announced_by_the_sweeper_after_the_grace(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The function dies right after the write that finished the job: nothing queues the event it kept.
    monkeypatch.setattr("inference_core.logic.job_assembly.outbox.flush", lambda records: 0)
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver)
    upload(job, jsonl(good_lines(2)))
    JobDriver(pipeline).run()
    monkeypatch.undo()
    finished = job_store().get(job["id"])
    assert finished is not None
    assert finished.status.value == "completed"
    assert len(finished.outbox) == 1

    sweep(pipeline, monkeypatch)  # within the grace the writer may still queue it: the sweeper leaves it
    assert pipeline.receive("WebhookQueue") == []
    sweep(pipeline, monkeypatch, later=OUTBOX_GRACE + timedelta(seconds=1))
    send_webhooks(pipeline)

    [(delivery_headers, body)] = delivered("job.completed")
    assert delivery_headers["webhook-id"] == webhook_id(job["id"], WebhookEvent.JOB_COMPLETED)
    assert body["data"]["status"] == "completed"
    assert job["id"] not in {j.id for j in job_store().active(partition=OUTBOX_JOBS)}


def test_a_progress_event_left_on_a_job_that_finishes_without_an_event_of_its_own_is_still_delivered(
    pipeline: Pipeline, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The webhook wants progress only: the finishing write causes no event, yet the job must stay where the
    # sweeper finds it until the progress event still on it is queued.
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    real_send = WebhookEventQueue.send_many

    def refuse_progress(self: WebhookEventQueue, messages: list[EventMessage]) -> set[str]:
        return set() if any(m.event == "job.progress" for m in messages) else real_send(self, messages)

    monkeypatch.setattr(WebhookEventQueue, "send_many", refuse_progress)
    headers = pipeline.headers()
    job = create_job(pipeline, headers, webhook=receiver, webhook_events_filter=["progress"])
    upload(job, jsonl(good_lines(2)))
    JobDriver(pipeline).run()
    finished = job_store().get(job["id"])
    assert finished is not None
    assert finished.status.value == "completed"
    assert finished.outbox  # its progress event could not be queued
    assert job["id"] in {j.id for j in job_store().active(partition=OUTBOX_JOBS)}

    monkeypatch.setattr(WebhookEventQueue, "send_many", real_send)
    sweep(pipeline, monkeypatch, later=OUTBOX_GRACE + timedelta(seconds=1))
    send_webhooks(pipeline)

    assert {body["type"] for _, body in delivered("job.progress")} == {"job.progress"}
    left = job_store().get(job["id"])
    assert left is not None
    assert left.outbox == ()
    assert job["id"] not in {j.id for j in job_store().active(partition=OUTBOX_JOBS)}
