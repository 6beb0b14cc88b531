"""Per-tenant limits: requests and inputs per minute (fixed one-minute windows, counted across every API instance
on one DynamoDB item per tenant and window), open bulk jobs (jobs and OpenAI batches not yet finished), the share
of a minute's inputs that goes through the interactive lane (the rest goes through the backlog lane), and the inputs
that may wait in the backlog lane at once."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class TenantLimits:
    requests_per_minute: int
    inputs_per_minute: int
    open_jobs: int
    interactive_inputs_per_minute: int
    queued_inputs: int

    def with_overrides(self, overrides: dict[str, int]) -> TenantLimits:
        known = {name: value for name, value in overrides.items() if name in LIMIT_NAMES}
        return replace(self, **known)


LIMIT_NAMES = (
    "requests_per_minute",
    "inputs_per_minute",
    "open_jobs",
    "interactive_inputs_per_minute",
    "queued_inputs",
)


class Lane(StrEnum):
    """Which queue a prediction waits in. The backlog lane has a consumer of bounded concurrency whose batches hold
    their place at the endpoint until they are done, so one tenant's burst never fills the endpoint's queue ahead
    of another tenant's interactive work."""

    INTERACTIVE = "interactive"
    BACKLOG = "backlog"


def window_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


# BatchGetItem reads at most 100 keys: the backlog is summed over at most this many windows.
MAX_BACKLOG_WINDOWS = 100


def backlog_windows(now: datetime, prediction_ttl: timedelta) -> list[datetime]:
    """The windows whose predictions may still wait in the backlog lane: a prediction older than its TTL is
    expired, never dispatched, so older windows no longer count (and a count lost to a crash ages out with them)."""
    count = min(MAX_BACKLOG_WINDOWS, math.ceil(prediction_ttl / WINDOW) + 1)
    latest = window_start(now)
    return [latest - n * WINDOW for n in range(count)]


def waiting_inputs(windows: list[tuple[int, int]]) -> int:
    """Inputs still in the backlog lane, from each window's (enqueued, left the queue) counts. A window never
    counts below zero: a redelivered batch may report its predictions twice."""
    return sum(max(0, enqueued - left) for enqueued, left in windows)


@dataclass(frozen=True)
class RateState:
    """A tenant's window after a request was counted (or refused): what the x-ratelimit-* headers say."""

    limits: TenantLimits
    requests: int
    inputs: int
    resets_at: datetime
    refused: str | None = None  # "requests" or "inputs" when this request was over that limit
    # Inputs actually sent this minute, as far as this process knows: `inputs` also counts what every process
    # took ahead of use (allowances), which would move a light tenant to the backlog lane on its first request.
    used: int = 0

    @property
    def remaining_requests(self) -> int:
        return max(0, self.limits.requests_per_minute - self.requests)

    @property
    def remaining_inputs(self) -> int:
        return max(0, self.limits.inputs_per_minute - self.inputs)

    @property
    def lane(self) -> Lane:
        """Past its interactive share of this minute's inputs, a tenant's predictions go through the backlog lane.
        (What other processes spent from their allowances is reported at their next count: the lane changes a
        little late, never early.)"""
        return Lane.BACKLOG if self.used > self.limits.interactive_inputs_per_minute else Lane.INTERACTIVE

    def reset_seconds(self, now: datetime) -> float:
        return max(0.0, (self.resets_at - now).total_seconds())

    def retry_after(self, now: datetime) -> int:
        return max(1, math.ceil(self.reset_seconds(now)))

    def headers(self, now: datetime) -> dict[str, str]:
        """OpenAI's rate-limit headers; `-tokens` carries our second axis, inputs, for clients that read only it."""
        reset = _duration(self.reset_seconds(now))
        limit_inputs, remaining_inputs = str(self.limits.inputs_per_minute), str(self.remaining_inputs)
        return {
            "x-ratelimit-limit-requests": str(self.limits.requests_per_minute),
            "x-ratelimit-remaining-requests": str(self.remaining_requests),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-inputs": limit_inputs,
            "x-ratelimit-remaining-inputs": remaining_inputs,
            "x-ratelimit-reset-inputs": reset,
            "x-ratelimit-limit-tokens": limit_inputs,
            "x-ratelimit-remaining-tokens": remaining_inputs,
            "x-ratelimit-reset-tokens": reset,
        }


def _duration(seconds: float) -> str:
    """OpenAI's format: `20ms`, `17s`, `1m0s`."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"
