"""Job intake: an S3 ObjectCreated event (or a command) -> a job whose file is validated as a stream and cut into
chunks. Both ways in meet here: an upload to a job's presigned URL, and a file dropped under inbox/<tenant>/.

S3 delivers events at least once. An inbox job's id is derived from the object's identity in the event (bucket,
key, and the event's sequencer or version), so the same event twice makes one job and a new upload to the same key
makes a new one. An upload job exists before its file: the first event moves it out of `awaiting_upload`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from inference_core.dal import job_files
from inference_core.dal.api_keys import api_key_store
from inference_core.dal.jobs import job_store
from inference_core.dal.objects import StreamingWriter, object_store
from inference_core.domain import documents as doc
from inference_core.domain.batches import JOB_PREFIX, BatchLine
from inference_core.domain.clock import utc_now
from inference_core.domain.inputs import estimated_tokens
from inference_core.domain.job_lines import parse_line
from inference_core.domain.jobs import (
    ERRORS_SHOWN,
    MAX_LINE_BYTES,
    VALIDATION_STALE,
    Estimate,
    Job,
    JobApi,
    JobPlan,
    JobSource,
    JobStatus,
    LineError,
    chunk_line_id,
    completion_event,
)
from inference_core.domain.predictions import ErrorInfo
from inference_core.errors import RateLimitedError
from inference_core.logic import capacity, job_driver, limits, outbox
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

# Lines that are not JSON objects at all: a file made only of these is not JSON Lines.
_NOT_AN_OBJECT = frozenset({"invalid_json", "invalid_utf8", "line_too_long", "not_an_object"})


@dataclass(frozen=True)
class S3EventRecord:
    """The parts of one S3 event notification record that intake reads."""

    event_source: str
    event_name: str
    event_time: str
    bucket: str
    raw_key: str
    e_tag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @classmethod
    def from_document(cls, raw: Any) -> S3EventRecord:
        record = doc.as_object(raw, "record")
        s3 = doc.as_object(record.get("s3"), "s3")
        obj = doc.as_object(s3.get("object"), "s3.object")
        return cls(
            event_source=doc.text(record, "eventSource"),
            event_name=doc.text(record, "eventName"),
            event_time=doc.optional_text(record, "eventTime") or "",
            bucket=doc.text(doc.as_object(s3.get("bucket"), "s3.bucket"), "name", min_length=1),
            raw_key=doc.text(obj, "key", min_length=1),
            e_tag=doc.optional_text(obj, "eTag"),
            version_id=doc.optional_text(obj, "versionId"),
            sequencer=doc.optional_text(obj, "sequencer"),
        )

    @property
    def key(self) -> str:
        return unquote_plus(self.raw_key)  # S3 URL-encodes keys in events

    @property
    def identity(self) -> str:
        """What tells one upload of a key from another, and is equal in every delivery of one event."""
        return self.sequencer or self.version_id or f"{self.e_tag}@{self.event_time}"


@dataclass
class IntakeOutcome:
    jobs: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


class MalformedIntakeMessage(ValueError):
    """Neither an S3 event notification nor a job command."""


def handle_message(body: str) -> IntakeOutcome:
    """One message of the intake queue: an S3 event notification (maybe a test event) or a job command."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise MalformedIntakeMessage("the message is not JSON") from exc
    if not isinstance(document, dict):
        raise MalformedIntakeMessage("the message is not a JSON object")
    outcome = IntakeOutcome()
    if document.get("Event") == "s3:TestEvent":
        return outcome  # S3 sends one when the notification is configured
    if "command" in document:
        _run_command(str(document["command"]), str(document.get("job_id", "")), outcome)
        return outcome
    records = document.get("Records")
    if not isinstance(records, list):
        raise MalformedIntakeMessage("neither an S3 event nor a job command")
    for raw in records:
        try:
            record = S3EventRecord.from_document(raw)
        except doc.InvalidDocument as exc:
            raise MalformedIntakeMessage(f"an S3 event record without its fields: {exc}") from exc
        if record.event_source != "aws:s3" or not record.event_name.startswith("ObjectCreated:"):
            outcome.ignored.append(record.key)
            continue
        _object_created(record, outcome)
    return outcome


def _run_command(command: str, job_id: str, outcome: IntakeOutcome) -> None:
    job = job_store().get(job_id)
    if job is None:
        raise MalformedIntakeMessage(f"a command for an unknown job: {job_id!r}")
    if command == "settle":
        job_driver.settle([job.id])
    elif command == "validate":
        _validate_and_plan(job, outcome)
    elif command == "build_retry":
        _build_retry(job)
    else:
        raise MalformedIntakeMessage(f"unknown job command {command!r}")
    outcome.jobs.append(job.id)


def _object_created(record: S3EventRecord, outcome: IntakeOutcome) -> None:
    settings = get_settings()
    if record.bucket != settings.bucket_name:
        outcome.ignored.append(record.key)
        return
    upload = job_files.upload_job(record.key)
    if upload is not None:
        tenant_id, job_id = upload
        job = job_store().get(job_id)
        if job is None or job.tenant_id != tenant_id:
            logger.warning("an upload for no job", key=record.key)
            outcome.ignored.append(record.key)
            return
        _validate_and_plan(job, outcome)
        return
    inbox = job_files.inbox_file(record.key)
    if inbox is None:
        outcome.ignored.append(record.key)
        return
    _inbox_file(inbox, record, outcome)


def _inbox_file(inbox: job_files.InboxFile, record: S3EventRecord, outcome: IntakeOutcome) -> None:
    if not api_key_store().tenant_has_active_key(inbox.tenant_id):
        _refuse_inbox_file(inbox, outcome, "unknown_tenant", f"tenant {inbox.tenant_id!r} has no active API key")
        return
    digest = hashlib.sha256(f"{record.bucket}\n{inbox.key}\n{record.identity}".encode()).hexdigest()
    job = Job(
        id=f"{JOB_PREFIX}{digest[:32]}",
        tenant_id=inbox.tenant_id,
        status=JobStatus.AWAITING_UPLOAD,  # its file is there: validation starts at once below
        created_at=utc_now(),
        source=JobSource.INBOX,
        input_key=inbox.key,
        results_base=inbox.results_base,
    )
    store = job_store()
    existing = store.get(job.id)
    if existing is None:
        # Counted only for a new job: the same event again must find its own job, not a full tenant.
        try:
            created = limits.create_job(job)
        except RateLimitedError as refused:
            _refuse_inbox_file(inbox, outcome, "open_jobs_limit", f"{refused.message}; upload the file again then")
            return
        if created:
            _validate_and_plan(job, outcome)
            return
        existing = store.get(job.id)  # made by a delivery of the same event meanwhile
    if existing is None or existing.status is not JobStatus.VALIDATING:
        outcome.ignored.append(inbox.key)  # the same event again: that job exists and has moved on
        return
    _validate_and_plan(existing, outcome)  # a validation that may have died with its function: take it over if stale


def _refuse_inbox_file(inbox: job_files.InboxFile, outcome: IntakeOutcome, code: str, message: str) -> None:
    """No job for this file: the reason beside it, where the pipeline that dropped it looks."""
    reason = {"key": inbox.key, "error": {"code": code, "message": message}}
    object_store().put(job_files.rejection_key(inbox.key), json.dumps(reason).encode(), "application/json")
    logger.warning("inbox file refused", tenant_id=inbox.tenant_id, reason=code)
    metrics.add_metric(name="InboxFilesRefused", unit=MetricUnit.Count, value=1)
    outcome.ignored.append(inbox.key)


def _build_retry(job: Job) -> None:
    """A retry job's input: the lines of its parent's input whose numbers are in the parent's error file."""
    if job.parent_id is None or job.status is not JobStatus.VALIDATING:
        return
    parent = job_store().get(job.parent_id)
    if parent is None or parent.error_key is None:
        raise MalformedIntakeMessage(f"a retry of a job without an error file: {job.parent_id}")
    objects = object_store()
    failed_lines: set[int] = set()
    for raw in objects.lines(parent.error_key, MAX_LINE_BYTES * 2):
        if raw.strip():
            failed_lines.add(int(json.loads(raw)["line"]))
    with objects.writer(job.input_key, "application/jsonl") as out:
        for number, raw in enumerate(objects.lines(parent.input_key, MAX_LINE_BYTES), start=1):
            if number in failed_lines:
                out.write(raw + b"\n")
        out.close()
    _validate_and_plan(job, IntakeOutcome())


# -- validation and planning ----------------------------------------------------------------------------------------


@dataclass
class _Plan:
    total: int = 0
    failed: int = 0
    objects_seen: int = 0  # lines that were JSON objects, valid or not
    inputs: int = 0
    tokens: int = 0
    chunks: int = 0
    shown: list[LineError] = field(default_factory=list)
    file_error: ErrorInfo | None = None


class _ChunkCutter:
    """Cuts valid lines into chunk objects of at most `max_inputs` texts and about `max_bytes` bytes."""

    def __init__(self, job_id: str, max_inputs: int, max_bytes: int, write: bool) -> None:
        self.job_id, self.max_inputs, self.max_bytes, self.write = job_id, max_inputs, max_bytes, write
        self.lines: list[bytes] = []
        self.inputs = 0
        self.size = 0
        self.count = 0

    def add(self, line: bytes, inputs: int) -> None:
        if self.lines and (self.inputs + inputs > self.max_inputs or self.size + len(line) > self.max_bytes):
            self.flush()
        self.lines.append(line)
        self.inputs += inputs
        self.size += len(line)

    def flush(self) -> None:
        if not self.lines:
            return
        if self.write:
            body = b"".join(self.lines)
            object_store().put(job_files.chunk_key(self.job_id, self.count), body, "application/jsonlines")
        self.count += 1
        self.lines, self.inputs, self.size = [], 0, 0


def _validate_and_plan(job: Job, outcome: IntakeOutcome) -> None:
    store = job_store()
    now = utc_now()
    started = job.status in (JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING)
    if not started or not store.begin_validation(job, now, now - VALIDATION_STALE):
        outcome.ignored.append(job.id)  # planned already, or another delivery of this event is validating it
        return
    found = _validate(job)
    status = JobStatus.IN_PROGRESS
    if found.file_error is not None:
        status = JobStatus.FAILED
        # Before the job is failed: a pipeline waits on the manifest, and a retried message finds the job done.
        _write_failure_manifest(job, found.file_error)
    elif job.dry_run:
        status = JobStatus.VALIDATED
    plan = JobPlan(
        total=found.total,
        failed=found.failed,
        input_count=found.inputs,
        chunk_count=found.chunks,
        errors=found.shown,
        estimate=_estimate(found) if job.dry_run or status is JobStatus.IN_PROGRESS else None,
        error=found.file_error,
    )
    at = utc_now()
    planned = store.plan(job, status, plan, at, completion_event(job, status) if status.is_terminal else None)
    if planned is None:
        # Cancelled or expired while it was validated: it keeps that status, and gets its plan for the assembly.
        current = store.get(job.id)
        if current is None or current.status not in (JobStatus.CANCELLING, JobStatus.EXPIRED):
            return
        planned = store.plan_stopped(current, plan, at)
        if planned is None:
            return
    outbox.flush([planned])
    outcome.jobs.append(job.id)
    metrics.add_metric(name="JobLinesAccepted", unit=MetricUnit.Count, value=found.total - found.failed)
    logger.info(
        "job planned", job_id=job.id, status=status.value, total=found.total, failed=found.failed, chunks=found.chunks
    )
    if not planned.status.is_terminal or planned.ready_to_assemble:
        job_driver.settle([job.id])


def _validate(job: Job) -> _Plan:
    """Read the file once, as a stream: count and check every line, write the valid ones into chunk objects and the
    invalid ones into the validation error file. Memory holds one chunk and a digest per custom_id."""
    settings = get_settings()
    objects = object_store()
    plan = _Plan()
    size = objects.size(job.input_key)
    if size is None:
        plan.file_error = ErrorInfo.of("file_missing", "the job's input file is not there (deleted before it ran?)")
        return plan
    if size > settings.job_max_file_bytes:
        plan.file_error = ErrorInfo.of(
            "file_too_large", f"the file is {size} bytes; a job file holds at most {settings.job_max_file_bytes}"
        )
        return plan
    parse = parse_line
    if job.api is JobApi.OPENAI:
        # Here, not at the top: OpenAI's request models are pydantic, which native jobs never need to load.
        from inference_core.domain.openai_requests import parse_batch_line

        parse = parse_batch_line
    cutter = _ChunkCutter(job.id, settings.job_chunk_max_inputs, settings.job_chunk_max_bytes, write=not job.dry_run)
    seen: set[bytes] = set()
    with objects.writer(job_files.validation_errors_key(job.id), "application/jsonl") as errors:
        for number, raw in enumerate(objects.lines(job.input_key, MAX_LINE_BYTES), start=1):
            if not raw.strip():
                continue  # blank lines (a trailing one, say) are not lines of work; numbering still counts them
            plan.total += 1
            if plan.total > settings.job_max_lines:
                plan.file_error = ErrorInfo.of(
                    "too_many_lines", f"the file has more than {settings.job_max_lines} lines; split it into jobs"
                )
                errors.abort()
                return plan
            parsed = parse(raw, number)
            if parsed.error is None and parsed.line is not None:
                plan.objects_seen += 1
                digest = hashlib.blake2b(parsed.line.custom_id.encode(), digest_size=16).digest()
                if digest in seen:
                    message = f"custom_id {parsed.line.custom_id!r} is used by an earlier line"
                    error = LineError(number, parsed.line.custom_id, ErrorInfo.of("duplicate_custom_id", message))
                    _refuse(plan, errors, error)
                    continue
                seen.add(digest)
                texts = parsed.line.texts
                plan.inputs += len(texts)
                plan.tokens += sum(estimated_tokens(text) for text in texts)
                chunk_line = BatchLine(
                    id=chunk_line_id(number, parsed.line.custom_id),
                    inputs=texts,
                    parameters=parsed.line.model_parameters(),
                )
                cutter.add(chunk_line.to_json().encode() + b"\n", len(texts))
            elif parsed.error is not None:
                if parsed.error.error.code not in _NOT_AN_OBJECT:
                    plan.objects_seen += 1
                _refuse(plan, errors, parsed.error)
        cutter.flush()
        errors.close()
    plan.chunks = cutter.count
    if plan.total == 0:
        plan.file_error = ErrorInfo.of("empty_file", "the file holds no lines")
    elif plan.objects_seen == 0:
        plan.file_error = ErrorInfo.of("not_jsonl", "no line of the file is a JSON object: it is not JSON Lines")
    return plan


def _refuse(plan: _Plan, errors: StreamingWriter, error: LineError) -> None:
    plan.failed += 1
    if len(plan.shown) < ERRORS_SHOWN:
        plan.shown.append(error)
    errors.write(json.dumps(error.to_json(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n")


def _estimate(plan: _Plan) -> Estimate:
    settings = get_settings()
    endpoint_seconds = plan.inputs / settings.endpoint_items_per_second if settings.endpoint_items_per_second else 0.0
    return Estimate(
        inputs=plan.inputs,
        tokens=plan.tokens,
        endpoint_seconds=round(endpoint_seconds, 3),
        cost_usd=round(endpoint_seconds / 3600 * settings.instance_price_per_hour, 6),
        eta_seconds=_eta_seconds(endpoint_seconds, plan.chunks),
    )


def _eta_seconds(endpoint_seconds: float, chunks: int) -> float:
    """The endpoint's time spread over the instances in service now, plus the pipeline's round trip per chunk (about
    2 s) over the places the gate opens for them; at least a tenth of a second."""
    instances = capacity.instances_in_service()
    eta = endpoint_seconds / max(1, instances) + 2.0 * chunks / capacity.bulk_places_now()
    return max(0.1, round(eta, 1))


def _write_failure_manifest(job: Job, error: ErrorInfo | None) -> None:
    """A pipeline waits on the manifest: a file that could not run gets one too, with the reason."""
    manifest = {
        "job_id": job.id,
        "status": JobStatus.FAILED.value,
        "error": error.as_dict() if error else None,
        "input": object_store().uri(job.input_key),
    }
    object_store().put(
        job_files.manifest_key(job.results_base), json.dumps(manifest, indent=2).encode(), "application/json"
    )
