"""The result cache through the real handlers over moto: partial and full hits, order, tenant separation, TTL
expiry, opt-out, answers at submit for waiting callers, a failed write-back, and bulk jobs run twice."""

from __future__ import annotations

import inspect
import json
from typing import Any

import boto3
import pytest

from inference_core.dal import result_cache as result_cache_dal
from inference_core.dal.batches import BatchStore
from inference_core.dal.objects import ObjectStore
from inference_core.dal.predictions import PredictionStore
from inference_core.errors import TransientError
from inference_core.logic import dispatch, job_driver
from inference_core.logic.dispatch import QueuedMessage
from inference_core.logic.sweeper import sweep
from inference_core.settings import get_settings
from tests.conftest import AwsCalls
from tests.integration.conftest import REGION, Pipeline, fake_model_output
from tests.integration.test_jobs import JobDriver, create_job, get_job, jsonl, read_url_key, upload
from tests.integration.test_sweeper import past_the_invocation_timeout


def run(pipeline: Pipeline, headers: dict[str, str], inputs: Any, **body: Any) -> dict[str, Any]:
    """Submit, dispatch, answer whatever was invoked, complete; the finished prediction."""
    created = pipeline.submit(headers, inputs, **body)
    before = len(pipeline.invocations)
    pipeline.dispatch()
    for invocation in pipeline.invocations[before:]:
        pipeline.endpoint_succeeds(invocation)
    pipeline.complete()
    return pipeline.get(headers, created["id"])


def cache_items() -> list[dict[str, Any]]:
    ddb = boto3.client("dynamodb", region_name=REGION)
    items: list[dict[str, Any]] = ddb.scan(TableName=get_settings().result_cache_table_name)["Items"]
    return items


def expected(texts: list[str]) -> list[list[float]]:
    return fake_model_output({"id": "x", "inputs": texts})["output"]["embeddings"]  # type: ignore[no-any-return]


def test_a_repeated_prediction_finishes_without_invoking_the_endpoint(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    first = run(pipeline, headers, ["alpha", "beta gamma"])

    second = run(pipeline, headers, ["alpha", "beta gamma"])

    assert len(pipeline.invocations) == 1
    assert second["status"] == "succeeded"
    assert second["output"] == first["output"]
    assert second["output"]["truncated"] == [False, False]
    assert len(cache_items()) == 2


def test_partial_hits_send_only_the_misses_and_keep_input_order(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, ["b", "dddd"])

    mixed = ["aaa", "b", "cc", "dddd", "eeeee"]
    final = run(pipeline, headers, mixed)

    sent = pipeline.batch_lines(pipeline.invocations[-1])
    assert [line["inputs"] for line in sent] == [["aaa", "cc", "eeeee"]]
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == expected(mixed)
    assert final["output"]["truncated"] == [False] * 5
    # The same request with the cache bypassed computes the same answer.
    fresh = run(pipeline, headers, mixed, parameters={"cache": False})
    assert fresh["output"]["embeddings"] == final["output"]["embeddings"]


def test_a_batch_mixing_whole_hits_and_misses_invokes_once_for_the_misses(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "seen before")
    invoked = len(pipeline.invocations)

    hit = pipeline.submit(headers, "seen before")
    miss = pipeline.submit(headers, "brand new")
    pipeline.dispatch()
    hit_now = pipeline.get(headers, hit["id"])
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    assert len(pipeline.invocations) == invoked + 1
    assert [line["id"] for line in pipeline.batch_lines(pipeline.invocations[-1])] == [miss["id"]]
    assert hit_now["status"] == "succeeded"  # finished by the dispatcher, before the endpoint answered
    assert pipeline.get(headers, miss["id"])["output"]["embeddings"] == expected(["brand new"])


def test_one_tenant_never_gets_another_tenants_cached_results(pipeline: Pipeline) -> None:
    run(pipeline, pipeline.headers("tenant-a"), "shared text")

    other = run(pipeline, pipeline.headers("tenant-b"), "shared text")

    assert len(pipeline.invocations) == 2
    assert other["status"] == "succeeded"


def test_the_shared_scope_serves_one_entry_to_every_tenant(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULT_CACHE_SCOPE", "shared")
    get_settings.cache_clear()
    run(pipeline, pipeline.headers("tenant-a"), "shared text")

    other = run(pipeline, pipeline.headers("tenant-b"), "shared text")

    assert len(pipeline.invocations) == 1
    assert other["status"] == "succeeded"


def test_the_cache_off_in_the_template_means_no_lookups_and_no_entries(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESULT_CACHE_SCOPE", "off")
    get_settings.cache_clear()
    headers = pipeline.headers()
    run(pipeline, headers, "again")
    run(pipeline, headers, "again")

    assert len(pipeline.invocations) == 2
    assert cache_items() == []


def test_an_expired_entry_is_not_served_even_before_dynamodb_deletes_it(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "ephemeral")
    ddb = boto3.client("dynamodb", region_name=REGION)
    for item in cache_items():  # its TTL has passed; DynamoDB deletes expired items only eventually
        ddb.update_item(
            TableName=get_settings().result_cache_table_name,
            Key={"pk": item["pk"]},
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": {"N": "1"}},
        )

    again = run(pipeline, headers, "ephemeral")

    assert len(pipeline.invocations) == 2
    assert again["status"] == "succeeded"
    assert int(cache_items()[0]["expires_at"]["N"]) > 1  # written back afresh


def test_entries_live_for_the_templates_ttl(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    final = run(pipeline, headers, "how long")
    completed = final["completed_at"]

    (item,) = cache_items()

    from datetime import datetime

    lifetime = int(item["expires_at"]["N"]) - datetime.fromisoformat(completed).timestamp()
    hours = get_settings().result_cache_ttl_hours
    assert abs(lifetime - hours * 3600) < 60


@pytest.mark.parametrize(
    ("body", "extra_headers"),
    [({"parameters": {"cache": False}}, {}), ({}, {"Cache-Control": "no-store"}), ({}, {"Cache-Control": "no-cache"})],
)
def test_a_request_can_opt_out_of_reading_and_writing_the_cache(
    pipeline: Pipeline, body: dict[str, Any], extra_headers: dict[str, str]
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "opt out")  # cached
    opted = pipeline.headers(**extra_headers)

    created = pipeline.api.post("/v1/predictions", json={"inputs": "opt out", **body}, headers=opted).json()
    pipeline.dispatch()
    sent = pipeline.batch_lines(pipeline.invocations[-1])
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    assert len(pipeline.invocations) == 2
    assert sent[0]["parameters"] == {}  # the switch is ours: the model never sees it
    assert pipeline.get(headers, created["id"])["status"] == "succeeded"


def test_an_opted_out_request_writes_nothing_back(pipeline: Pipeline) -> None:
    run(pipeline, pipeline.headers(), "private", parameters={"cache": False})

    assert cache_items() == []


def test_the_model_revision_and_normalize_separate_entries(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "versioned")
    run(pipeline, headers, "versioned", parameters={"normalize": False})
    monkeypatch.setenv("MODEL_REVISION", "a-new-model")
    get_settings.cache_clear()
    run(pipeline, headers, "versioned")
    # encoding_format is applied when read: it shares the entry.
    base64 = run(pipeline, headers, "versioned", parameters={"encoding_format": "base64"})

    assert len(pipeline.invocations) == 3
    assert isinstance(base64["output"]["embeddings"][0], str)


def test_a_waiting_caller_whose_inputs_are_all_cached_is_answered_at_submit(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    first = run(pipeline, headers, ["one", "two"])

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": ["one", "two"]}, headers={**headers, "Prefer": "wait=5"}
    )

    assert response.status_code == 200
    answered = response.json()
    assert answered["status"] == "succeeded"
    assert answered["output"] == first["output"]
    assert pipeline.receive("RequestQueue") == []  # never queued
    assert pipeline.get(headers, answered["id"])["output"] == first["output"]
    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]
    assert answered["id"] in [p["id"] for p in listed]


def test_a_waiting_caller_with_a_miss_goes_through_the_queue(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "one")

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": ["one", "three"]}, headers={**headers, "Prefer": "wait=1"}
    )

    assert response.status_code == 202
    assert len(pipeline.receive("RequestQueue")) == 1


def test_a_prediction_answered_at_submit_still_sends_its_webhook(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "hooked")

    response = pipeline.api.post(
        "/v1/predictions",
        json={"inputs": "hooked", "webhook": "https://hooks.example.com/done"},
        headers={**headers, "Prefer": "wait=5"},
    )

    assert response.json()["status"] == "succeeded"
    events = [json.loads(m["Body"]) for m in pipeline.receive("WebhookQueue")]
    assert [e["event"] for e in events if e["subject_id"] == response.json()["id"]] == ["prediction.completed"]


def test_a_model_answer_that_does_not_fit_the_gaps_fails_only_its_prediction(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "cached")
    partial = pipeline.submit(headers, ["cached", "not cached"])
    other = pipeline.submit(headers, "other")
    pipeline.dispatch()

    def short_answer(line: dict[str, Any]) -> dict[str, Any]:
        answer = fake_model_output(line)
        if line["id"] == partial["id"]:
            answer["output"]["embeddings"] = []
            answer["output"]["truncated"] = []
        return answer

    pipeline.endpoint_succeeds(pipeline.invocations[-1], short_answer)
    pipeline.complete()

    failed = pipeline.get(headers, partial["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "malformed_output"
    assert pipeline.get(headers, other["id"])["status"] == "succeeded"


def test_a_failed_write_back_loses_no_result(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any, entries: Any, now: Any) -> None:
        raise TransientError("throttled", reason="throttled")

    monkeypatch.setattr(result_cache_dal.ResultCache, "put_many", refuse)
    headers = pipeline.headers()

    final = run(pipeline, headers, "unlucky")

    assert final["status"] == "succeeded"
    assert cache_items() == []


def test_a_bulk_job_run_again_never_reaches_the_endpoint(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "4")
    get_settings.cache_clear()
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    lines = [{"custom_id": f"row-{i}", "inputs": f"text number {i}"} for i in range(10)]
    lines.append({"custom_id": "multi", "inputs": ["one", "two"], "parameters": {"encoding_format": "base64"}})
    first = create_job(pipeline, headers)
    upload(first, jsonl(lines))
    driver.run()
    invoked = len(pipeline.invocations)

    second = create_job(pipeline, headers)
    upload(second, jsonl(lines))
    driver.run()

    done_first, done_second = get_job(pipeline, headers, first["id"]), get_job(pipeline, headers, second["id"])
    assert invoked == 3
    assert len(pipeline.invocations) == invoked  # every chunk answered from the cache
    assert done_second["status"] == "completed"
    assert done_second["request_counts"] == done_first["request_counts"]
    assert read_url_key(done_second["output_url"]) == read_url_key(done_first["output_url"])


def test_a_bulk_chunk_with_some_cached_texts_sends_only_the_rest(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    run(pipeline, headers, ["two", "four"])  # cached by an interactive prediction
    lines = [
        {"custom_id": "a", "inputs": ["one", "two", "three"]},
        {"custom_id": "b", "inputs": "four"},
        {"custom_id": "c", "inputs": "five", "parameters": {"cache": False}},
    ]
    job = create_job(pipeline, headers)
    upload(job, jsonl(lines))
    driver.run()

    sent = pipeline.batch_lines(pipeline.invocations[-1])
    assert [(line["inputs"], line["parameters"]) for line in sent] == [(["one", "three"], {}), (["five"], {})]
    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed"
    outputs = {row["custom_id"]: row["output"] for row in read_url_key(done["output_url"])}
    assert outputs["a"]["embeddings"] == expected(["one", "two", "three"])
    assert outputs["b"]["embeddings"] == expected(["four"])
    assert outputs["c"]["embeddings"] == expected(["five"])


def test_a_lost_notification_of_a_partly_cached_batch_is_finished_by_the_sweeper(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "kept")
    created = pipeline.submit(headers, ["new one", "kept", "new two"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    assert pipeline.lose_notifications() == 1

    sweep(past_the_invocation_timeout(pipeline))

    final = pipeline.get(headers, created["id"])
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == expected(["new one", "kept", "new two"])
    assert len(cache_items()) == 3  # the sweeper wrote the fresh ones back too


def test_a_partly_cached_batch_whose_record_was_not_written_still_merges(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "kept")

    def unavailable(self: Any, batch: Any) -> None:
        raise TransientError("throttled", reason="throttled")

    monkeypatch.setattr(BatchStore, "put", unavailable)
    created = pipeline.submit(headers, ["kept", "new"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()

    final = pipeline.get(headers, created["id"])
    assert final["status"] == "succeeded"
    assert final["output"]["embeddings"] == expected(["kept", "new"])


@pytest.mark.parametrize(
    "damage",
    [
        "REMOVE model",
        "SET vector = :text",
        "SET vector = :odd",
        "SET truncated = :text",
    ],
)
def test_a_damaged_cache_entry_is_a_miss_not_a_wrong_answer(pipeline: Pipeline, damage: str) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "damaged")
    ddb = boto3.client("dynamodb", region_name=REGION)
    (item,) = cache_items()
    values = {":text": {"S": "oops"}, ":odd": {"B": b"abc"}}
    used = {name: value for name, value in values.items() if name in damage}
    ddb.update_item(
        TableName=get_settings().result_cache_table_name,
        Key={"pk": item["pk"]},
        UpdateExpression=damage,
        **({"ExpressionAttributeValues": used} if used else {}),
    )

    again = run(pipeline, headers, "damaged")

    assert len(pipeline.invocations) == 2
    assert again["status"] == "succeeded"
    assert again["output"]["embeddings"] == expected(["damaged"])


def emitted_metrics(printed: str) -> dict[str, list[float]]:
    """Every metric value in the EMF documents the handlers printed."""
    values: dict[str, list[float]] = {}
    for line in printed.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values.setdefault(definition["Name"], []).extend(document[definition["Name"]])
    return values


def test_lookups_report_hit_ratio_and_inputs_saved(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, ["a", "b", "c"])
    capsys.readouterr()

    run(pipeline, headers, ["a", "new", "c", "b"])

    emitted = emitted_metrics(capsys.readouterr().out)
    assert emitted["CacheLookups"] == [4.0]
    assert emitted["InputsServedFromCache"] == [3.0]
    assert emitted["EndpointInputsSaved"] == [3.0]
    assert emitted["CacheHitRatio"] == [75.0]
    assert emitted["CacheEntriesWritten"] == [1.0]


def test_a_retried_completion_never_moves_a_finished_record_onto_another_line(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two part-cached predictions of two tenants in one batch; finishing the second fails once, so the whole
    # notification is delivered again.
    first_headers, second_headers = pipeline.headers("tenant-a"), pipeline.headers("tenant-b")
    run(pipeline, first_headers, "a cached")
    run(pipeline, second_headers, "b cached")
    first = pipeline.submit(first_headers, ["a cached", "a fresh text that is rather long"])
    second = pipeline.submit(second_headers, ["b cached", "b"])
    pipeline.dispatch()
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    messages = pipeline.receive("CompletionQueue")
    real_succeed = PredictionStore.succeed
    calls: list[str] = []

    def flaky(self: PredictionStore, prediction_id: str, *args: Any, **kwargs: Any) -> bool:
        calls.append(prediction_id)
        if len(calls) == 2:
            raise TransientError("throttled", reason="throttled")
        return real_succeed(self, prediction_id, *args, **kwargs)

    monkeypatch.setattr(PredictionStore, "succeed", flaky)
    assert pipeline.complete(messages)["batchItemFailures"]
    pipeline.complete(messages)

    assert pipeline.get(first_headers, first["id"])["output"]["embeddings"] == expected(
        ["a cached", "a fresh text that is rather long"]
    )
    assert pipeline.get(second_headers, second["id"])["output"]["embeddings"] == expected(["b cached", "b"])


def test_a_bulk_job_answered_whole_by_the_cache_finishes_every_chunk_without_deep_calls(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    lines = [{"custom_id": f"row-{i}", "inputs": f"text {i % 5}"} for i in range(120)]
    run(pipeline, headers, [f"text {i}" for i in range(5)])
    invoked = len(pipeline.invocations)
    depth: list[int] = []
    real_finish = job_driver.finish_chunk

    def measured(*args: Any, **kwargs: Any) -> Any:
        depth.append(len(inspect.stack(0)))
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(job_driver, "finish_chunk", measured)
    job = create_job(pipeline, headers)
    upload(job, jsonl(lines))
    driver.run()

    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 120, "completed": 120, "failed": 0}
    assert len(pipeline.invocations) == invoked
    assert max(depth) - min(depth) < 10  # 120 chunks finished in a loop, not one call inside another


def test_a_bulk_chunk_launched_before_a_model_change_files_its_vectors_under_the_old_revision(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    job = create_job(pipeline, headers)
    upload(job, jsonl([{"custom_id": "a", "inputs": "launched before the deploy"}]))
    driver.intake()  # launched: the chunk is at the endpoint
    monkeypatch.setenv("MODEL_REVISION", "a-new-model")  # the functions move to a new model meanwhile
    get_settings.cache_clear()
    driver.run()

    # The new revision has nothing: its first request goes to the model.
    run(pipeline, headers, "launched before the deploy")
    assert len(pipeline.invocations) == 2


def test_the_cache_control_header_is_not_part_of_the_idempotent_body(pipeline: Pipeline) -> None:
    headers = pipeline.headers()
    body = {"inputs": "same body"}
    first = pipeline.api.post("/v1/predictions", json=body, headers={**headers, "Idempotency-Key": "k-1"})
    again = pipeline.api.post(
        "/v1/predictions", json=body, headers={**headers, "Idempotency-Key": "k-1", "Cache-Control": "no-store"}
    )

    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]


def test_a_long_run_of_cached_chunks_goes_on_in_a_fresh_invocation(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_CHUNK_MAX_INPUTS", "1")
    get_settings.cache_clear()
    monkeypatch.setattr(job_driver, "FINISH_IN_PLACE_SECONDS", 0.0)  # hand on after every chunk
    driver = JobDriver(pipeline)
    headers = pipeline.headers()
    run(pipeline, headers, ["x", "y"])
    job = create_job(pipeline, headers)
    upload(job, jsonl([{"custom_id": str(i), "inputs": "xy"[i % 2]} for i in range(6)]))

    driver.run()

    done = get_job(pipeline, headers, job["id"])
    assert done["status"] == "completed"
    assert done["request_counts"]["completed"] == 6
    assert len(pipeline.invocations) == 1


def test_a_cache_that_cannot_be_read_is_a_miss_not_a_failed_batch(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "cached")

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("throttled", reason="throttled")

    monkeypatch.setattr(PredictionStore, "get_many_with_cached", throttled)
    final = run(pipeline, headers, "cached")

    assert final["status"] == "succeeded"
    assert len(pipeline.invocations) == 2


def test_hits_that_cannot_be_stored_send_the_whole_batch_to_the_model(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "cached")
    real_put = ObjectStore.put

    def no_hits(self: ObjectStore, key: str, body: bytes, content_type: str) -> str:
        if key.endswith(".hits.jsonl"):
            raise TransientError("slow down", reason="throttled")
        return real_put(self, key, body, content_type)

    monkeypatch.setattr(ObjectStore, "put", no_hits)
    final = run(pipeline, headers, ["cached", "new"])

    assert final["status"] == "succeeded"
    assert pipeline.batch_lines(pipeline.invocations[-1])[0]["inputs"] == ["cached", "new"]
    assert final["output"]["embeddings"] == expected(["cached", "new"])


def test_a_lookup_whose_hits_could_not_be_stored_is_counted_once_with_nothing_served(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "cached")
    real_put = ObjectStore.put

    def no_hits(self: ObjectStore, key: str, body: bytes, content_type: str) -> str:
        if key.endswith(".hits.jsonl"):
            raise TransientError("slow down", reason="throttled")
        return real_put(self, key, body, content_type)

    monkeypatch.setattr(ObjectStore, "put", no_hits)
    capsys.readouterr()
    run(pipeline, headers, ["cached", "new"])

    emitted = emitted_metrics(capsys.readouterr().out)
    assert emitted["CacheLookups"] == [2.0]  # one lookup of two texts, not one per attempt at using it
    assert emitted["InputsServedFromCache"] == [0.0]  # the model computed both


def test_one_completion_invocation_writes_several_batches_back_together(
    pipeline: Pipeline, aws_calls: AwsCalls
) -> None:
    headers = pipeline.headers()
    for i in range(3):  # three batches, their notifications handed to one invocation
        pipeline.submit(headers, f"text {i}")
        pipeline.dispatch()
        pipeline.endpoint_succeeds(pipeline.invocations[-1])
    before = aws_calls.of("dynamodb.BatchWriteItem")

    pipeline.complete(pipeline.receive("CompletionQueue"))

    assert aws_calls.of("dynamodb.BatchWriteItem") - before == 1
    assert len(cache_items()) == 3


def dies_before_finishing_from_the_cache(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher dies right before finishing the whole hits; SQS then delivers the same messages again."""

    def died(*args: Any, **kwargs: Any) -> list[str]:
        raise RuntimeError("the function timed out here")

    messages = pipeline.receive("RequestQueue")
    with monkeypatch.context() as dying:
        dying.setattr(dispatch, "_finish_from_cache", died)
        with pytest.raises(RuntimeError):
            dispatch.dispatch([QueuedMessage(m["MessageId"], m["Body"], 1) for m in messages])
    pipeline.dispatch(messages)


@pytest.mark.parametrize("endpoint", ["succeeds", "fails"])
def test_whole_hits_left_running_by_a_dispatcher_that_died_are_finished_by_completion(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "cached whole")
    hit = pipeline.submit(headers, "cached whole")
    miss = pipeline.submit(headers, "new text")

    dies_before_finishing_from_the_cache(pipeline, monkeypatch)
    # SQS delivers both again: the batch is known to be invoked, nothing more is sent
    assert len(pipeline.invocations) == 2
    if endpoint == "succeeds":
        pipeline.endpoint_succeeds(pipeline.invocations[-1])
    else:
        pipeline.endpoint_fails(pipeline.invocations[-1], "ModelError")
    pipeline.complete()

    answered = pipeline.get(headers, hit["id"])
    assert answered["status"] == "succeeded"
    assert answered["output"]["embeddings"] == expected(["cached whole"])
    assert pipeline.get(headers, miss["id"])["status"] == ("succeeded" if endpoint == "succeeds" else "failed")


@pytest.mark.parametrize("value", ["false", 0, None, [], {"read": False}])
def test_a_cache_switch_that_is_not_a_boolean_is_refused_and_writes_nothing(pipeline: Pipeline, value: Any) -> None:
    headers = pipeline.headers()

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": "x", "parameters": {"cache": value}}, headers=headers
    )

    assert response.status_code == 422
    assert pipeline.api.get("/v1/predictions", headers=headers).json()["data"] == []
    assert pipeline.receive("RequestQueue") == []


@pytest.mark.parametrize(
    ("header", "bypassed"),
    [
        ("private, no-cache", True),
        ("NO-STORE", True),
        ('no-cache="Set-Cookie"', True),
        ("no-storey", False),
        ("max-age=0", False),
        ("x-no-store", False),
        ("no-store" + "\x00" * 3, False),
        ("a" * 8000, False),
    ],
)
def test_only_a_no_store_or_no_cache_directive_bypasses_the_cache(
    pipeline: Pipeline, header: str, bypassed: bool
) -> None:
    headers = pipeline.headers()
    run(pipeline, headers, "directive")

    response = pipeline.api.post(
        "/v1/predictions", json={"inputs": "directive"}, headers={**headers, "Cache-Control": header}
    )
    pipeline.dispatch()

    assert response.status_code in {202, 400}
    invoked_again = len(pipeline.invocations) == 2
    assert invoked_again is (bypassed and response.status_code == 202)


def test_a_batch_answered_whole_whose_dispatcher_died_before_finishing_it_is_finished_by_the_sweeper(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = pipeline.headers("died-before-finishing")
    run(pipeline, headers, "cached whole")
    hit = pipeline.submit(headers, "cached whole")

    dies_before_finishing_from_the_cache(pipeline, monkeypatch)  # delivered again: running in its batch, not sent
    assert pipeline.get(headers, hit["id"])["status"] == "running"

    sweep(past_the_invocation_timeout(pipeline))  # no output will ever come: the hits answer it
    sweep(past_the_invocation_timeout(pipeline))

    answered = pipeline.get(headers, hit["id"])
    assert answered["status"] == "succeeded"
    assert answered["output"]["embeddings"] == expected(["cached whole"])
    assert len(pipeline.invocations) == 1  # the first run's only
    usage = pipeline.api.get("/v1/usage", headers=headers).json()["data"][0]
    assert (usage["predictions"], usage["cache_hits"]) == (2, 1)
