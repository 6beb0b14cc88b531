"""The job state machine (domain.jobs): one table of edges, nothing leaves a terminal status, and the store writes
only edges of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inference_core.domain.jobs import (
    ASSEMBLED,
    ASSEMBLING,
    CANCELLABLE,
    EXPIRABLE,
    SOURCES,
    IllegalTransition,
    JobStatus,
    cancel_target,
    check_transition,
)

TERMINAL = {status for status in JobStatus if status.is_terminal}


def reachable_from(start: JobStatus) -> set[JobStatus]:
    seen, frontier = {start}, [start]
    while frontier:
        current = frontier.pop()
        for target, sources in SOURCES.items():
            if current in sources and target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def test_no_transition_leaves_a_terminal_status() -> None:
    for target, sources in SOURCES.items():
        for source in sources & TERMINAL:
            # The one edge out of a terminal status goes back to it: an expired job assembled, still expired.
            assert source is target is JobStatus.EXPIRED, (source, target)


def test_awaiting_upload_is_only_a_start_and_every_status_is_reachable_from_it() -> None:
    assert JobStatus.AWAITING_UPLOAD not in SOURCES
    assert reachable_from(JobStatus.AWAITING_UPLOAD) == set(JobStatus)


def test_every_status_can_still_end() -> None:
    for status in JobStatus:
        assert reachable_from(status) & TERMINAL, status


def test_cancelling_and_expiring_go_along_edges() -> None:
    for status in CANCELLABLE:
        check_transition({status}, cancel_target(status))
    for status in EXPIRABLE:
        check_transition({status}, JobStatus.EXPIRED)
    assert cancel_target(JobStatus.AWAITING_UPLOAD) is JobStatus.CANCELLED  # nothing to assemble
    assert cancel_target(JobStatus.IN_PROGRESS) is JobStatus.CANCELLING


def test_assembly_claims_and_finishes_along_edges() -> None:
    for status, during in ASSEMBLING.items():
        check_transition({status}, during)
        assert during in ASSEMBLED, during
        check_transition({during}, ASSEMBLED[during])
        assert ASSEMBLED[during].is_terminal


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (JobStatus.COMPLETED, JobStatus.CANCELLING),
        (JobStatus.CANCELLED, JobStatus.IN_PROGRESS),
        (JobStatus.FAILED, JobStatus.VALIDATING),
        (JobStatus.VALIDATED, JobStatus.IN_PROGRESS),
        (JobStatus.AWAITING_UPLOAD, JobStatus.COMPLETED),
        (JobStatus.IN_PROGRESS, JobStatus.COMPLETED),  # only through finalizing
    ],
)
def test_an_edge_the_table_lacks_is_refused(source: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_transition({source}, target)


def test_the_store_refuses_an_illegal_transition_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_core.dal.jobs import JobStore
    from inference_core.dal.table import Table
    from inference_core.domain.jobs import Job, JobSource

    writes: list[object] = []
    store = JobStore(Table("t"), "i", "o", retention=datetime.now(UTC) - datetime.now(UTC))
    monkeypatch.setattr(JobStore, "_write", lambda self, job_id, update: writes.append(update))
    done = Job(
        id="job_x",
        tenant_id="t",
        status=JobStatus.COMPLETED,
        created_at=datetime.now(UTC),
        source=JobSource.API,
        input_key="k",
        results_base="b/",
    )
    with pytest.raises(IllegalTransition):
        store.cancel(done, datetime.now(UTC), None)
    with pytest.raises(IllegalTransition):
        store.expire(done, datetime.now(UTC), None)
    assert writes == []
