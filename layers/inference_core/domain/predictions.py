"""A prediction, its status machine, and what a client asked for.

Plain dataclasses, like the rest of what the consumers handle (see `domain.documents`): the API validates what
clients send with its own schemas before it builds these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from inference_core.domain.webhooks import PendingEvent, WebhookEvent


class PredictionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {PredictionStatus.SUCCEEDED, PredictionStatus.FAILED, PredictionStatus.CANCELLED, PredictionStatus.EXPIRED}
)

# The state machine: for each target status, the statuses it may be reached from. Nothing ever leaves a terminal one.
ALLOWED_SOURCES: dict[PredictionStatus, frozenset[PredictionStatus]] = {
    PredictionStatus.RUNNING: frozenset({PredictionStatus.QUEUED}),
    PredictionStatus.SUCCEEDED: frozenset({PredictionStatus.RUNNING}),
    PredictionStatus.FAILED: frozenset({PredictionStatus.QUEUED, PredictionStatus.RUNNING}),
    PredictionStatus.CANCELLED: frozenset({PredictionStatus.QUEUED, PredictionStatus.RUNNING}),
    PredictionStatus.EXPIRED: frozenset({PredictionStatus.QUEUED}),
}

# The one backward edge, and not part of the machine above: the dispatcher marks a batch `running` before it
# invokes the endpoint, and if the invocation is refused it hands exactly that batch's predictions back to `queued`.
REQUEUE_SOURCE = PredictionStatus.RUNNING

# Error messages can echo input; they are capped wherever they are recorded.
MAX_ERROR_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str

    @classmethod
    def of(cls, code: str, message: str) -> ErrorInfo:
        return cls(code=code, message=message[:MAX_ERROR_MESSAGE_CHARS])

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class PredictionMetrics:
    queue_ms: int | None = None
    inference_ms: int | None = None


def _elapsed_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


@dataclass
class Prediction:
    id: str
    tenant_id: str
    status: PredictionStatus
    created_at: datetime
    input_count: int
    tokens: int = 0  # estimated at submit (domain.jobs.estimated_tokens): what the usage API reports
    parameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    webhook: str | None = None
    # Which events the webhook gets: "completed" (every terminal status) and optionally "started".
    webhook_events: list[str] = field(default_factory=lambda: ["completed"])
    # Webhook events written with the transition that caused them and not queued yet (see PendingEvent).
    outbox: tuple[PendingEvent, ...] = ()
    started_at: datetime | None = None
    completed_at: datetime | None = None
    batch_id: str | None = None
    # Records written before outputs moved out of the table hold the output inline.
    output: dict[str, Any] | None = None
    # Where the output is: with `output_range`, bytes [start, end] of a batch output; without, a whole object of
    # its own (an output too large to inline in a response, served as a presigned link).
    output_location: str | None = None
    output_range: tuple[int, int] | None = None
    error: ErrorInfo | None = None

    @property
    def metrics(self) -> PredictionMetrics:
        """Derived from the timestamps, so no write carries them twice."""
        ran = self.status in {PredictionStatus.SUCCEEDED, PredictionStatus.FAILED}
        return PredictionMetrics(
            queue_ms=_elapsed_ms(self.created_at, self.started_at),
            inference_ms=_elapsed_ms(self.started_at, self.completed_at) if ran else None,
        )


def event_on(prediction: Prediction, status: PredictionStatus) -> PendingEvent | None:
    """The webhook event that moving this prediction to `status` causes, if its webhook asked for it: `completed`
    for every terminal status, `started` for running."""
    if not prediction.webhook:
        return None
    if status.is_terminal:
        event, wanted = WebhookEvent.PREDICTION_COMPLETED, "completed"
    elif status is PredictionStatus.RUNNING:
        event, wanted = WebhookEvent.PREDICTION_STARTED, "started"
    else:
        return None
    return PendingEvent.of(prediction.id, event) if wanted in prediction.webhook_events else None


@dataclass(frozen=True)
class Transition:
    """The outcome of a conditional status change: `updated` when it happened, else the record as it stands."""

    updated: Prediction | None
    current: Prediction | None = None


@dataclass
class NewPrediction:
    """What a client asked for, after validation."""

    inputs: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    webhook: str | None = None
    webhook_events: list[str] = field(default_factory=lambda: ["completed"])


@dataclass
class Page:
    items: list[Prediction]
    next_cursor: str | None = None


EXPIRED = ErrorInfo.of("expired", "the prediction waited longer than its time to live")
