"""Per-tenant limits: requests and inputs per minute (fixed one-minute windows, counted across every API instance
on one DynamoDB item per tenant and window), and open bulk jobs (jobs and OpenAI batches not yet finished)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class TenantLimits:
    requests_per_minute: int
    inputs_per_minute: int
    open_jobs: int

    def with_overrides(self, overrides: dict[str, int]) -> TenantLimits:
        known = {name: value for name, value in overrides.items() if name in LIMIT_NAMES}
        return replace(self, **known)


LIMIT_NAMES = ("requests_per_minute", "inputs_per_minute", "open_jobs")


def window_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class RateState:
    """A tenant's window after a request was counted (or refused): what the x-ratelimit-* headers say."""

    limits: TenantLimits
    requests: int
    inputs: int
    resets_at: datetime
    refused: str | None = None  # "requests" or "inputs" when this request was over that limit

    @property
    def remaining_requests(self) -> int:
        return max(0, self.limits.requests_per_minute - self.requests)

    @property
    def remaining_inputs(self) -> int:
        return max(0, self.limits.inputs_per_minute - self.inputs)

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
