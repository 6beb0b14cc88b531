"""The endpoint's capacity as the bulk path sees it: the instances in service (read from SageMaker, kept for a
few seconds per function instance), the gate they open, and the bulk backlog published for the scaling policy."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from inference_core.dal.clients import cached_factory
from inference_core.dal.endpoint import async_endpoint
from inference_core.domain.capacity import bulk_backlog, bulk_places
from inference_core.domain.jobs import Job
from inference_core.errors import DependencyError
from inference_core.observability import MetricUnit, logger, metrics, single_metric
from inference_core.settings import get_settings


@dataclass
class _Reading:
    instances: int | None = None
    at: float = float("-inf")


@cached_factory
def _last_reading() -> _Reading:
    return _Reading()


def instances_in_service() -> int:
    """The endpoint's instances now: read again once the last reading is `endpoint_capacity_seconds` old. If
    SageMaker cannot be read, the last reading stands (one instance when there is none: the gate's cap bounds
    it, and a wrong guess only costs waiting chunks)."""
    reading = _last_reading()
    if time.monotonic() - reading.at < get_settings().endpoint_capacity_seconds and reading.instances is not None:
        return reading.instances
    try:
        reading.instances = async_endpoint().instances_in_service()
    except DependencyError as exc:
        logger.warning("endpoint instances unknown; keeping the last reading", reason=exc.reason)
        reading.instances = 1 if reading.instances is None else reading.instances
    reading.at = time.monotonic()
    return reading.instances


def bulk_places_now() -> int:
    settings = get_settings()
    return bulk_places(
        instances_in_service(), settings.max_concurrent_invocations_per_instance, settings.job_max_in_flight_chunks
    )


def publish_backlog(jobs: Iterable[Job]) -> None:
    """The bulk backlog, for the dashboard and the scaling policy: chunks waiting in S3 per job and in all, and
    the seconds of one instance's time they hold per instance in service (the metric the bulk policy tracks)."""
    instances = instances_in_service()
    backlog = bulk_backlog(jobs, get_settings().endpoint_items_per_second, instances)
    metrics.add_metric(name="BulkChunksWaiting", unit=MetricUnit.Count, value=backlog.chunks)
    metrics.add_metric(
        name="BulkBacklogSecondsPerInstance", unit=MetricUnit.Seconds, value=round(backlog.seconds_per_instance, 1)
    )
    metrics.add_metric(name="EndpointInstancesInService", unit=MetricUnit.Count, value=instances)
    for job_id, chunks in backlog.per_job.items():
        with single_metric(name="BulkChunksWaiting", unit=MetricUnit.Count, value=chunks) as one:
            one.add_dimension(name="job_id", value=job_id)
