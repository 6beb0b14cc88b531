"""plan_sweep: what the sweeper does with each prediction its index returns (table-driven, no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inference_core.domain.predictions import Prediction, PredictionStatus
from inference_core.logic.sweeper import plan_sweep

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
GRACE = timedelta(minutes=20)


def record(status: PredictionStatus, created_ago: timedelta, started_ago: timedelta | None = None) -> Prediction:
    return Prediction(
        id="p1",
        tenant_id="acme",
        status=status,
        created_at=NOW - created_ago,
        started_at=NOW - started_ago if started_ago is not None else None,
        batch_id="b1" if started_ago is not None else None,
        input_count=1,
    )


Q, R = PredictionStatus.QUEUED, PredictionStatus.RUNNING
CASES = {
    "queued past its time to live expires": (record(Q, TTL), "expire"),
    "queued within its time to live is looked at again at its deadline": (record(Q, TTL / 2), "later"),
    "running past its grace is stuck in its batch": (record(R, GRACE * 2, GRACE), "stuck"),
    "running within its grace is looked at again": (record(R, GRACE * 2, GRACE / 2), "later"),
    "finished is dropped from the index": (record(PredictionStatus.SUCCEEDED, TTL * 2), "close"),
    "cancelled is dropped from the index": (record(PredictionStatus.CANCELLED, TTL * 2), "close"),
}


@pytest.mark.parametrize(("prediction", "expected"), CASES.values(), ids=CASES.keys())
def test_each_record_gets_one_action(prediction: Prediction, expected: str) -> None:
    plan = plan_sweep([prediction], NOW, TTL, GRACE)

    actions = {
        "expire": [p.id for p in plan.expire],
        "later": list(plan.later),
        "stuck": [p.id for batch in plan.stuck_batches.values() for p in batch],
        "close": plan.close,
    }
    assert actions.pop(expected) == ["p1"]
    assert not any(actions.values())


def test_later_means_the_real_deadline() -> None:
    queued = record(Q, timedelta(minutes=10))
    running = record(R, timedelta(minutes=30), timedelta(minutes=5))

    assert plan_sweep([queued], NOW, TTL, GRACE).later == {"p1": queued.created_at + TTL}
    assert plan_sweep([running], NOW, TTL, GRACE).later == {"p1": running.started_at + GRACE}  # type: ignore[operator]
