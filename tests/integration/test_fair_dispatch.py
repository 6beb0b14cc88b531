"""Fair dispatch over moto: a tenant past its interactive share of the minute waits in the backlog lane, whose
dispatcher marks its batches as bulk and holds its place until the batch is done; other tenants stay interactive."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from functions.dispatcher import handler as dispatcher_handler
from inference_core import cli
from inference_core.dal.clients import client
from inference_core.logic import limits
from inference_core.settings import get_settings
from tests.integration.conftest import Invocation, Pipeline

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def priorities(pipeline: Pipeline) -> dict[str, str]:
    """Each invocation's CustomAttributes (what the container reads its priority from), by batch id."""
    seen: dict[str, str] = {}

    def record(params: dict[str, Any], **_: Any) -> None:
        seen[params["InferenceId"]] = params.get("CustomAttributes", "")

    client("sagemaker-runtime").meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpointAsync", record
    )
    return seen


@pytest.fixture
def short_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_WAIT_SECONDS", "3")
    monkeypatch.setenv("BACKLOG_POLL_SECONDS", "0.05")
    get_settings.cache_clear()


def share(tenant: str, inputs_per_minute: int) -> None:
    assert cli.main(["set-limits", "--tenant", tenant, "--interactive-inputs-per-minute", str(inputs_per_minute)]) == 0
    limits.clear_cache()


def dispatch_backlog(pipeline: Pipeline) -> dict[str, Any]:
    return pipeline.deliver("BacklogQueue", pipeline.receive("BacklogQueue"), dispatcher_handler.lambda_handler)


def test_a_tenant_past_its_share_waits_in_the_backlog_lane_and_others_do_not(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 3)
    heavy, light = pipeline.headers("heavy"), pipeline.headers("light")

    heavy_ids = [pipeline.submit(heavy, ["a", "b"])["id"] for _ in range(4)]
    light_id = pipeline.submit(light, "x")["id"]

    interactive = [json.loads(m["Body"])["prediction_id"] for m in pipeline.receive("RequestQueue")]
    backlog = [json.loads(m["Body"])["prediction_id"] for m in pipeline.receive("BacklogQueue")]
    # 2 inputs are within the share of 3; from 4 on the tenant is past it
    assert sorted(interactive) == sorted([heavy_ids[0], light_id])
    assert sorted(backlog) == sorted(heavy_ids[1:])
    capsys.readouterr()


def test_embeddings_past_the_share_take_the_backlog_lane_too(
    pipeline: Pipeline, short_watch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 1)
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "first")

    # The embeddings route waits on its predictions: answer from a thread once they are queued.
    reply: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: reply.update(
            r=pipeline.api.post(
                "/v1/embeddings", json={"input": ["p", "q"], "model": "all-MiniLM-L6-v2"}, headers=headers
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 10
    queued: list[dict[str, Any]] = []
    while not queued and time.monotonic() < deadline:
        queued = pipeline.receive("BacklogQueue")
        time.sleep(0.05)
    assert len(queued) == 1
    assert json.loads(queued[0]["Body"])["inputs"] == ["p", "q"]
    pipeline.deliver("BacklogQueue", queued, dispatcher_handler.lambda_handler)  # let go at the 3 s bound
    pipeline.endpoint_succeeds(pipeline.invocations[-1])
    pipeline.complete()
    thread.join()

    assert reply["r"].status_code == 200, reply["r"].text
    assert len(reply["r"].json()["data"]) == 2
    capsys.readouterr()


def test_a_backlog_batch_is_bulk_and_its_dispatcher_returns_once_the_output_is_written(
    pipeline: Pipeline, priorities: dict[str, str], short_watch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 1)
    headers = pipeline.headers("heavy")
    first = pipeline.submit(headers, "warm")  # within the share
    created = [pipeline.submit(headers, f"t{n}")["id"] for n in range(3)]

    pipeline.dispatch()
    # The endpoint answers the backlog batch a little after its invocation, as a real one would.
    answered = threading.Event()

    def answer() -> None:
        while len(pipeline.invocations) < 2:
            time.sleep(0.01)
        time.sleep(0.3)
        pipeline.endpoint_succeeds(pipeline.invocations[-1])
        answered.set()

    endpoint = threading.Thread(target=answer)
    endpoint.start()
    started = time.monotonic()
    result = dispatch_backlog(pipeline)
    waited = time.monotonic() - started
    endpoint.join()

    interactive_batch, backlog_batch = (invocation.inference_id for invocation in pipeline.invocations)
    assert priorities[interactive_batch] == ""
    assert priorities[backlog_batch] == "priority=bulk"
    assert result == {"batchItemFailures": []}
    assert answered.is_set()
    assert 0.3 <= waited < 3  # held its place until the output, not to the wait's bound
    assert sorted(line["id"] for line in pipeline.batch_lines(pipeline.invocations[-1])) == sorted(created)
    pipeline.complete()
    assert {pipeline.get(headers, pid)["status"] for pid in created} == {"succeeded"}
    assert pipeline.get(headers, first["id"])["status"] == "running"  # its batch was not answered here
    assert pipeline.receive("BacklogQueue") == []
    capsys.readouterr()


def test_a_failed_backlog_batch_lets_its_place_go(
    pipeline: Pipeline, short_watch: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bound far from the failure's arrival, so a slow machine cannot blur which of the two ended the wait.
    monkeypatch.setenv("BACKLOG_WAIT_SECONDS", "10")
    get_settings.cache_clear()
    share("heavy", 1)
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "warm")
    pipeline.submit(headers, "late")
    pipeline.receive("RequestQueue")

    failure = threading.Thread(target=lambda: (time.sleep(0.2), pipeline.endpoint_fails(_last(pipeline), "oom")))
    failure.start()
    started = time.monotonic()
    result = dispatch_backlog(pipeline)
    waited = time.monotonic() - started
    failure.join()

    assert result == {"batchItemFailures": []}
    assert waited < 6  # the failure object ended the wait (its bound is 10 s)
    capsys.readouterr()


def test_a_backlog_batch_that_never_finishes_is_let_go_at_the_bound(
    pipeline: Pipeline, short_watch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 1)
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "warm")
    late = pipeline.submit(headers, "late")

    started = time.monotonic()
    result = dispatch_backlog(pipeline)
    waited = time.monotonic() - started

    assert result == {"batchItemFailures": []}  # the batch is at the endpoint: its messages are done
    assert 3 <= waited < 6
    assert pipeline.get(headers, late["id"])["status"] == "running"
    capsys.readouterr()


def _last(pipeline: Pipeline) -> Invocation:
    while not pipeline.invocations:
        time.sleep(0.01)
    return pipeline.invocations[-1]


def queue_limit(tenant: str, queued_inputs: int) -> None:
    assert cli.main(["set-limits", "--tenant", tenant, "--queued-inputs", str(queued_inputs)]) == 0
    limits.clear_cache()


def test_past_its_queued_inputs_a_tenant_gets_429_and_nothing_is_created(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 1)
    queue_limit("heavy", 5)
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "within the share")
    accepted = [pipeline.submit(headers, ["a", "b"])["id"] for _ in range(2)]  # 4 inputs waiting

    refused = pipeline.api.post("/v1/predictions", json={"inputs": ["c", "d"]}, headers=headers)
    openai = pipeline.api.post(
        "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["e", "f"]}, headers=headers
    )
    fits = pipeline.api.post("/v1/predictions", json={"inputs": "g"}, headers=headers)
    light = pipeline.api.post("/v1/predictions", json={"inputs": ["x"] * 8}, headers=pipeline.headers("light"))

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["details"] == {"limit": "queued_inputs", "queued_inputs": 5}
    assert refused.headers["Retry-After"] == str(limits.QUEUED_RETRY_SECONDS)
    assert refused.headers["x-ratelimit-limit-requests"] == "12000"
    assert openai.status_code == 429
    assert openai.json()["error"]["type"] == "rate_limit_exceeded"
    assert fits.status_code == 202  # 5 inputs waiting: at the limit, not past it
    assert light.status_code == 202  # another tenant's backlog is its own
    backlog = [json.loads(m["Body"])["prediction_id"] for m in pipeline.receive("BacklogQueue")]
    assert sorted(backlog) == sorted([*accepted, fits.json()["id"]])
    listed = pipeline.api.get("/v1/predictions", headers=headers).json()["data"]
    assert len(listed) == 4  # the refused ones wrote no record
    capsys.readouterr()


def test_a_refused_request_gives_its_count_back(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    share("heavy", 1)
    queue_limit("heavy", 2)
    assert cli.main(["set-limits", "--tenant", "heavy", "--requests-per-minute", "4"]) == 0
    limits.clear_cache()
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "within the share")
    pipeline.submit(headers, ["a", "b"])

    refusals = [pipeline.api.post("/v1/predictions", json={"inputs": "c"}, headers=headers) for _ in range(5)]

    # Four requests a minute: two counted, and every refusal handed its request back to the next one.
    assert [r.status_code for r in refusals] == [429] * 5
    assert {r.json()["error"]["details"]["limit"] for r in refusals} == {"queued_inputs"}
    capsys.readouterr()


def test_what_the_backlog_dispatcher_takes_frees_the_tenants_queue_once(
    pipeline: Pipeline, short_watch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    share("heavy", 1)
    queue_limit("heavy", 4)
    headers = pipeline.headers("heavy")
    pipeline.submit(headers, "within the share")
    pipeline.submit(headers, ["a", "b", "c", "d"])
    assert pipeline.api.post("/v1/predictions", json={"inputs": "e"}, headers=headers).status_code == 429
    messages = pipeline.receive("BacklogQueue")

    first = pipeline.deliver("BacklogQueue", messages, dispatcher_handler.lambda_handler)
    duplicate = pipeline.deliver("BacklogQueue", messages, dispatcher_handler.lambda_handler)  # at least once
    limits.clear_cache()  # each process rereads the count within BACKLOG_CACHE_SECONDS
    again = pipeline.api.post("/v1/predictions", json={"inputs": ["e", "f", "g", "h"]}, headers=headers)
    past = pipeline.api.post("/v1/predictions", json={"inputs": "i"}, headers=headers)

    assert first == duplicate == {"batchItemFailures": []}
    assert len(pipeline.invocations) == 1
    assert again.status_code == 202, again.text
    assert past.status_code == 429  # the duplicate delivery freed nothing twice
    capsys.readouterr()
