"""Bulk jobs: a JSONL file in, result and error files out, run as chunks through the same endpoint.

A job holds no record per line: lines live in S3 (the input file, the chunk objects, the part files), and the job
record keeps counters that move once per chunk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.webhooks import PendingEvent, WebhookEvent

MAX_CUSTOM_ID_CHARS = 64
MAX_LINE_BYTES = 200 * 1024  # the same bound as one POST /v1/predictions body
# How many validation errors a job's GET shows; the error file holds them all.
ERRORS_SHOWN = 5
# A validation that has not finished in this long stopped with its function (Lambda's limit is 15 minutes).
VALIDATION_STALE = timedelta(minutes=16)
# A job waiting this long for its validation to start lost the command that starts it: the sweeper sends it again.
VALIDATION_UNSTARTED = timedelta(minutes=2)


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    VALIDATING = "validating"
    VALIDATED = "validated"  # a dry run ends here
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def runs_chunks(self) -> bool:
        """Chunks are launched only in this status; cancelling and expiry stop them at once."""
        return self is JobStatus.IN_PROGRESS


_TERMINAL = {JobStatus.VALIDATED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}

# The job state machine: for each status, the statuses it may be reached from. The store writes no status change
# that is not an edge here (each write's condition is built from it), and a test checks that nothing leaves a
# terminal status. Edges from a status to itself resume work that stopped with its function (a stale validation or
# assembly taken over) or, for `expired`, assemble what finished: the job stays `expired`.
SOURCES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.VALIDATING: frozenset({JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}),
    JobStatus.VALIDATED: frozenset({JobStatus.VALIDATING}),
    JobStatus.FAILED: frozenset({JobStatus.VALIDATING}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.VALIDATING}),
    JobStatus.FINALIZING: frozenset({JobStatus.IN_PROGRESS, JobStatus.FINALIZING}),
    JobStatus.COMPLETED: frozenset({JobStatus.FINALIZING}),
    JobStatus.CANCELLING: frozenset({JobStatus.VALIDATING, JobStatus.IN_PROGRESS, JobStatus.CANCELLING}),
    JobStatus.CANCELLED: frozenset({JobStatus.AWAITING_UPLOAD, JobStatus.CANCELLING}),
    JobStatus.EXPIRED: frozenset(
        {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING, JobStatus.IN_PROGRESS, JobStatus.EXPIRED}
    ),
}

# Statuses a job may be cancelled or expired from, and what becomes of it: a job with no file ends at once; one
# with a file stops launching chunks and is assembled once those at the endpoint are back.
CANCELLABLE = frozenset({JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING, JobStatus.IN_PROGRESS})
EXPIRABLE = CANCELLABLE

# Assembly: the status a job is assembled in (claimed from the one it had), and the one it ends in.
ASSEMBLING: dict[JobStatus, JobStatus] = {
    JobStatus.IN_PROGRESS: JobStatus.FINALIZING,
    JobStatus.FINALIZING: JobStatus.FINALIZING,
    JobStatus.CANCELLING: JobStatus.CANCELLING,
    JobStatus.EXPIRED: JobStatus.EXPIRED,
}
ASSEMBLED: dict[JobStatus, JobStatus] = {
    JobStatus.FINALIZING: JobStatus.COMPLETED,
    JobStatus.CANCELLING: JobStatus.CANCELLED,
    JobStatus.EXPIRED: JobStatus.EXPIRED,
}


class IllegalTransition(ValueError):
    """A status change the state machine does not have: a bug in the caller, never written."""


def check_transition(sources: set[JobStatus], to: JobStatus) -> None:
    illegal = sorted(s.value for s in sources - SOURCES.get(to, frozenset()))
    if illegal:
        raise IllegalTransition(f"a job cannot go from {', '.join(illegal)} to {to.value}")


def cancel_target(status: JobStatus) -> JobStatus:
    """Where cancelling a job in `status` moves it."""
    return JobStatus.CANCELLED if status is JobStatus.AWAITING_UPLOAD else JobStatus.CANCELLING


def closes_at_once(status: JobStatus) -> bool:
    """A job stopped before its file came has nothing to assemble: the stop finishes it."""
    return status is JobStatus.AWAITING_UPLOAD


_BATCH_EVENTS = {
    JobStatus.COMPLETED: WebhookEvent.BATCH_COMPLETED,
    JobStatus.FAILED: WebhookEvent.BATCH_FAILED,
    JobStatus.EXPIRED: WebhookEvent.BATCH_EXPIRED,
    JobStatus.CANCELLED: WebhookEvent.BATCH_CANCELLED,
}


def completion_event(job: Job, to: JobStatus) -> PendingEvent | None:
    """The event of a job finishing in `to` (every terminal status), if its webhook asked for it: `job.completed`,
    or for an OpenAI batch `batch.<status>` as OpenAI names them."""
    if not job.webhook or "completed" not in job.webhook_events:
        return None
    if job.api is JobApi.OPENAI:
        return PendingEvent.of(job.id, _BATCH_EVENTS.get(to, WebhookEvent.BATCH_COMPLETED))
    return PendingEvent.of(job.id, WebhookEvent.JOB_COMPLETED)


def progress_event(job: Job, at: datetime) -> PendingEvent | None:
    """`job.progress` (one id per event, the same on its retries), if the webhook asked for it."""
    if job.webhook and "progress" in job.webhook_events:
        return PendingEvent.of(job.id, WebhookEvent.JOB_PROGRESS, int(at.timestamp()))
    return None


class Claim(StrEnum):
    """What an attempt to take a job's next chunk and a place under the bulk gate came to."""

    CLAIMED = "claimed"
    GATE_FULL = "gate_full"  # as many bulk chunks are in flight as the endpoint is allowed
    REFUSED = "refused"  # the job moved on (another scheduler took the chunk, or it stopped)


@dataclass(frozen=True)
class ClaimResult:
    outcome: Claim
    chunk: int = -1


class JobApi(StrEnum):
    """Which API a job belongs to: its routes, its line formats and its webhook events."""

    NATIVE = "native"  # /v1/jobs: lines {"custom_id", "inputs", "parameters"}
    OPENAI = "openai"  # /v1/batches: OpenAI's request and result lines


class JobSource(StrEnum):
    API = "api"  # POST /v1/jobs, then a PUT to the presigned URL
    INBOX = "inbox"  # a file dropped under inbox/<tenant>/
    RETRY = "retry"  # the failed lines of another job
    FILE = "file"  # POST /v1/batches over a file of /v1/files


@dataclass(frozen=True)
class LineError:
    """One line of the error file."""

    line: int
    custom_id: str | None
    error: ErrorInfo

    def to_json(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "line": self.line, "error": self.error.as_dict()}


@dataclass(frozen=True)
class Estimate:
    """What a dry run predicts for the real run, from the configured endpoint throughput and price."""

    inputs: int
    tokens: int
    endpoint_seconds: float
    cost_usd: float
    eta_seconds: float


@dataclass(frozen=True)
class JobPlan:
    """What validating a job's file found: its counts, its chunks, the first invalid lines, and for a dry run or
    a run the estimate; `error` when the file cannot run at all."""

    total: int
    failed: int
    input_count: int
    chunk_count: int
    errors: list[LineError]
    estimate: Estimate | None = None
    error: ErrorInfo | None = None


@dataclass
class Job:
    id: str
    tenant_id: str
    status: JobStatus
    created_at: datetime
    source: JobSource
    input_key: str
    # Where the results go: `<results_base>output.jsonl` style names are built by the jobs logic.
    results_base: str
    dry_run: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    webhook: str | None = None
    webhook_events: list[str] = field(default_factory=lambda: ["completed"])
    parent_id: str | None = None
    api: JobApi = JobApi.NATIVE
    input_file_id: str | None = None  # an OpenAI batch's input file
    validation_started: datetime | None = None
    started_at: datetime | None = None
    finalizing_at: datetime | None = None
    stopped_at: datetime | None = None  # cancelled or expired
    completed_at: datetime | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    invalid: int = 0  # of `failed`: lines refused by validation, before anything ran
    input_count: int = 0
    tokens: int = 0  # of the lines that completed, as estimated_tokens counts them
    # Set once the file is validated and cut into chunks; until then counts and chunks mean nothing.
    planned: bool = False
    chunk_count: int = 0
    next_chunk: int = 0
    running: dict[int, datetime] = field(default_factory=dict)
    done_chunks: set[int] = field(default_factory=set)
    errors: list[LineError] = field(default_factory=list)
    error: ErrorInfo | None = None
    estimate: Estimate | None = None
    output_key: str | None = None
    error_key: str | None = None
    # Webhook events written with the transition that caused them and not queued yet.
    outbox: tuple[PendingEvent, ...] = ()

    @property
    def processed(self) -> int:
        return self.completed + self.failed

    @property
    def chunks_left(self) -> bool:
        return self.next_chunk < self.chunk_count

    @property
    def ready_to_assemble(self) -> bool:
        """Planned, nothing in flight, and nothing more will be launched."""
        if self.status not in ASSEMBLING or not self.planned or self.running:
            return False
        return self.status is not JobStatus.IN_PROGRESS or not self.chunks_left


def json_line(document: object) -> bytes:
    """One line of a result, error or plan file: compact JSON, UTF-8, newline-terminated."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def output_line(number: int, custom_id: str, output: dict[str, Any]) -> bytes:
    return json_line({"custom_id": custom_id, "line": number, "output": output})


def line_number(raw: bytes) -> int:
    """The input line a line of a job's own part or error file is about."""
    return int(json.loads(raw)["line"])


def error_line(number: int, custom_id: str | None, error: ErrorInfo) -> bytes:
    return json_line(LineError(number, custom_id, error).to_json())


def chunk_line_id(line: int, custom_id: str) -> str:
    """The id a chunk line carries through the model: enough to write the result line without another lookup."""
    return f"{line}:{custom_id}"


def split_chunk_line_id(value: str) -> tuple[int, str]:
    line, _, custom_id = value.partition(":")
    return int(line), custom_id
