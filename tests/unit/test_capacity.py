"""The bulk gate and fair share (domain.capacity): pure decisions the scheduler and the capacity simulation share."""

from __future__ import annotations

import pytest

from inference_core.domain.capacity import (
    FairQueue,
    bulk_backlog_per_instance,
    bulk_places,
    instances_for,
    places_per_job,
)


@pytest.mark.parametrize(
    ("instances", "per_instance", "cap", "places"),
    [
        (1, 4, 64, 3),  # one slot of the instance kept for interactive batches
        (2, 4, 64, 6),
        (8, 4, 64, 24),
        (8, 4, 10, 10),  # never above the template's cap
        (0, 4, 64, 1),  # no instance: one chunk waits at SageMaker, which makes it scale out from zero
        (3, 1, 64, 3),  # an instance that takes one invocation at a time still takes a chunk
        (1, 1, 64, 1),
    ],
)
def test_the_gate_follows_the_instances_in_service(instances: int, per_instance: int, cap: int, places: int) -> None:
    assert bulk_places(instances, per_instance, cap) == places


def test_one_job_never_takes_every_place() -> None:
    assert [places_per_job(p) for p in (1, 2, 3, 24)] == [1, 1, 2, 23]


def test_the_fair_queue_serves_fewest_in_flight_then_first_offered() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.offer(2, "busy")
    queue.offer(0, "old")
    queue.offer(0, "new")
    queue.offer(1, "half")
    assert [queue.pop() for _ in range(len(queue))] == ["old", "new", "half", "busy"]


def test_the_backlog_metric_is_instance_seconds_of_waiting_work_per_instance() -> None:
    assert bulk_backlog_per_instance(30_000, 3_000.0, 2) == 5.0
    assert bulk_backlog_per_instance(30_000, 3_000.0, 0) == 10.0  # per the one instance it would take
    assert bulk_backlog_per_instance(0, 3_000.0, 4) == 0.0
    assert instances_for(600.0, 60.0, 8) == 8
    assert instances_for(100.0, 60.0, 8) == 2
    assert instances_for(0.0, 60.0, 8) == 0
