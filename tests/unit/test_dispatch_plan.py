"""plan_batch: what each request-queue message becomes, decided without AWS (table-driven)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.logic.dispatch import QueuedMessage, Skip, plan_batch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
IN_FLIGHT = timedelta(seconds=60)


def work(prediction_id: str, tenant: str = "acme") -> str:
    return json.dumps(
        {"prediction_id": prediction_id, "tenant_id": tenant, "created_at": NOW.isoformat(), "inputs": ["x"]}
    )


def record(
    prediction_id: str,
    status: PredictionStatus = PredictionStatus.QUEUED,
    tenant: str = "acme",
    age: timedelta = timedelta(seconds=1),
    started_ago: timedelta | None = None,
) -> Prediction:
    started = NOW - started_ago if started_ago is not None else None
    return Prediction(
        id=prediction_id, tenant_id=tenant, status=status, created_at=NOW - age, started_at=started, input_count=1
    )


CASES = {
    "a queued prediction is sent": ([work("p1")], [record("p1")], "send"),
    "a malformed body is rejected": (["not json"], [], "reject"),
    "a body that is JSON but not a work item is rejected": ([json.dumps({"prediction_id": "p1"})], [], "reject"),
    "a work item without a record is skipped": ([work("p1")], [], Skip.NO_RECORD),
    "another tenant's record is skipped": ([work("p1", tenant="globex")], [record("p1")], Skip.TENANT_MISMATCH),
    "a cancelled prediction is skipped": (
        [work("p1")],
        [record("p1", PredictionStatus.CANCELLED)],
        Skip.NOT_QUEUED,
    ),
    "a prediction dispatched earlier (duplicate delivery) is skipped": (
        [work("p1")],
        [record("p1", PredictionStatus.RUNNING, started_ago=IN_FLIGHT)],
        Skip.NOT_QUEUED,
    ),
    "a prediction an attempt still in flight marked running is kept for later": (
        [work("p1")],
        [record("p1", PredictionStatus.RUNNING, started_ago=IN_FLIGHT / 2)],
        "retry",
    ),
    "a finished prediction is skipped": ([work("p1")], [record("p1", PredictionStatus.SUCCEEDED)], Skip.NOT_QUEUED),
    "a prediction past its time to live expires": (
        [work("p1")],
        [record("p1", age=TTL + timedelta(seconds=1))],
        "expire",
    ),
}


@pytest.mark.parametrize(("bodies", "records", "expected"), CASES.values(), ids=CASES.keys())
def test_each_message_gets_one_outcome(bodies: list[str], records: list[Prediction], expected: str | Skip) -> None:
    messages = [QueuedMessage(f"m{i}", body, 1) for i, body in enumerate(bodies)]

    plan = plan_batch(messages, {r.id: r for r in records}, NOW, TTL, IN_FLIGHT)

    outcomes = {
        "send": [s.message.message_id for s in plan.send],
        "expire": [e.message.message_id for e in plan.expire],
        "reject": plan.reject,
        "retry": plan.retry,
    }
    if isinstance(expected, Skip):
        assert plan.skip == {"m0": expected}
        assert not any(outcomes.values())
    else:
        assert outcomes[expected] == ["m0"]
        assert plan.skip == {}
        assert sum(len(v) for v in outcomes.values()) == 1


def test_the_same_prediction_twice_in_one_batch_is_sent_once() -> None:
    messages = [QueuedMessage("m0", work("p1"), 1), QueuedMessage("m1", work("p1"), 2)]

    plan = plan_batch(messages, {"p1": record("p1")}, NOW, TTL)

    assert [s.message.message_id for s in plan.send] == ["m0"]
    assert plan.skip == {"m1": Skip.DUPLICATE}


def test_a_mixed_batch_keeps_message_order_and_fails_only_the_bad_one() -> None:
    messages = [
        QueuedMessage("m0", work("p1"), 1),
        QueuedMessage("m1", "{broken", 1),
        QueuedMessage("m2", work("p2"), 1),
        QueuedMessage("m3", work("p3"), 1),
    ]
    records = {"p1": record("p1"), "p2": record("p2", PredictionStatus.CANCELLED), "p3": record("p3")}

    plan = plan_batch(messages, records, NOW, TTL)

    assert [s.work.prediction_id for s in plan.send] == ["p1", "p3"]
    assert plan.reject == ["m1"]
    assert plan.skip == {"m2": Skip.NOT_QUEUED}


def test_the_time_to_live_is_measured_from_the_record_not_the_message() -> None:
    just_in_time = record("p1", age=TTL)

    plan = plan_batch([QueuedMessage("m0", work("p1"), 1)], {"p1": just_in_time}, NOW, TTL)

    assert len(plan.send) == 1
