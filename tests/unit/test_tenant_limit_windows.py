"""The backlog lane's windows and the inputs still waiting in it (pure: no AWS)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from inference_core.domain.limits import MAX_BACKLOG_WINDOWS, backlog_windows, waiting_inputs, window_start


def test_backlog_windows_cover_the_prediction_ttl_newest_first() -> None:
    now = datetime(2026, 12, 7, 12, 30, 45, tzinfo=UTC)

    windows = backlog_windows(now, timedelta(minutes=15))

    assert windows[0] == window_start(now) == datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
    # A prediction created 15 min before now (12:15:45, in the window 12:15) may still be queued; none older.
    assert windows[-1] == datetime(2026, 12, 7, 12, 15, tzinfo=UTC)
    assert len(windows) == 16
    assert all(a - b == timedelta(minutes=1) for a, b in itertools.pairwise(windows))


def test_backlog_windows_stop_at_what_one_batch_read_holds() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    assert len(backlog_windows(now, timedelta(days=1))) == MAX_BACKLOG_WINDOWS
    assert len(backlog_windows(now, timedelta(seconds=30))) == 2


def test_waiting_inputs_never_count_a_window_below_zero() -> None:
    # The second window's batch was reported twice (a redelivery): it frees nothing of the first.
    assert waiting_inputs([(10, 4), (3, 6), (0, 0)]) == 6
    assert waiting_inputs([]) == 0
