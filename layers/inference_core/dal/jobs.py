"""Job records `JOB#<id>`, the bulk-chunk gate `GATE#bulk-chunks`, and each tenant's open jobs `OPENJOBS#<tenant>`.

A tenant's open jobs are a set of ids that a new job joins in the transaction that writes it, on the condition
that the set is smaller than the tenant's limit: exact however many API instances create jobs at once. Finished
jobs leave it lazily, when a create finds the set full (`open_jobs`, `close_open_jobs`).

A job record carries counters, not lines. Every chunk moves through it twice, each time in one transaction with
the gate: a claim (`next_chunk` + 1, the chunk into `running`, the gate's `in_flight` + 1 while under its bound)
and a finish (the chunk out of `running`, its counts added, the gate - 1). A chunk that is not in `running`
cannot be finished again, so counters move exactly once however often a notification arrives.

Every status change is a named transition whose condition comes from the state machine in `domain.jobs`
(`SOURCES`); a write that causes a webhook event keeps the event on the record (`outbox`) in the same write.

Open jobs sit in the sparse open index in one of three partitions: active (validating, in progress, cancelling,
expired before assembly; ordered by when they were last served, so the scheduler reads the least recently served
first), waiting for their file (kept apart so unused upload links never crowd the scheduler's read), and finished
with an event still to queue (due for the sweeper a little after the write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.idempotency import IdempotencyClaim, IdempotencyKeyTaken, idempotency_store
from inference_core.dal.table import (
    CURSOR_KEYS,
    Table,
    Update,
    decode_cursor,
    encode_cursor,
    from_attrs,
    iso,
    key,
    parse_dt,
    to_attrs,
    transact_write,
    without_events,
)
from inference_core.domain.jobs import (
    ASSEMBLED,
    ASSEMBLING,
    Claim,
    ClaimResult,
    Estimate,
    Job,
    JobApi,
    JobPlan,
    JobSource,
    JobStatus,
    LineError,
    cancel_target,
    check_transition,
    closes_at_once,
)
from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.webhooks import OUTBOX_GRACE, PendingEvent
from inference_core.settings import get_settings

ACTIVE_JOBS = "JOBS"
WAITING_JOBS = "JOBS#WAITING"
# Finished jobs whose webhook event is not queued yet: the sweeper queues it once it is due.
OUTBOX_JOBS = "JOBS#OUTBOX"
_GATE = "GATE#bulk-chunks"


class OpenJobsFull(Exception):
    """The tenant's open-job set is as large as its limit."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(tenant_id)
        self.tenant_id = tenant_id


def _open_jobs_pk(tenant_id: str) -> str:
    return f"OPENJOBS#{tenant_id}"


def _open_entry(job_id: str, created_at: datetime) -> str:
    # With its creation time: a job whose record cannot be read (not visible yet, or gone) is judged by its age.
    return f"{iso(created_at)}#{job_id}"


def _split_entry(entry: str) -> tuple[str, str, str]:
    return entry.partition("#")


def _pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def tenant_partition(tenant_id: str, api: JobApi) -> str:
    """A tenant's jobs and its OpenAI batches are listed apart (each API lists its own)."""
    return f"{'BATCHES' if api is JobApi.OPENAI else 'JOBS'}#{tenant_id}"


def _listed(job: Job) -> str:
    return f"{iso(job.created_at)}#{job.id}"


def _served(at: datetime, job_id: str) -> str:
    return f"{iso(at)}#{job_id}"


def _to_item(job: Job, retention: timedelta) -> dict[str, Any]:
    created = iso(job.created_at)
    item: dict[str, Any] = {
        "pk": _pk(job.id),
        "kind": "job",
        "id": job.id,
        "tenant_id": job.tenant_id,
        "status": job.status.value,
        "created_at": created,
        "job_source": job.source.value,
        "input_key": job.input_key,
        "results_base": job.results_base,
        "dry_run": job.dry_run,
        "metadata": job.metadata or None,
        "webhook": job.webhook,
        "webhook_events": job.webhook_events if job.webhook else None,
        "parent_id": job.parent_id,
        "job_api": job.api.value,
        "input_file_id": job.input_file_id,
        "line_total": 0,
        "lines_completed": 0,
        "lines_failed": 0,
        "gsi1pk": tenant_partition(job.tenant_id, job.api),
        "gsi1sk": _listed(job),
        "expires_at": int((job.created_at + retention).timestamp()),
        # Every job is open from birth: the sweeper expires one that never gets its file.
        "open_pk": WAITING_JOBS if job.status is JobStatus.AWAITING_UPLOAD else ACTIVE_JOBS,
        "open_due": _served(job.created_at, job.id),
    }
    return item


def _to_job(item: Mapping[str, Any]) -> Job:
    error = None
    if item.get("error_code"):
        error = ErrorInfo(code=item["error_code"], message=item.get("error_message", ""))
    estimate = Estimate(**json.loads(item["dry_run_estimate"])) if item.get("dry_run_estimate") else None
    errors = [
        LineError(line=e["line"], custom_id=e.get("custom_id"), error=ErrorInfo(**e["error"]))
        for e in json.loads(item.get("first_errors") or "[]")
    ]
    return Job(
        id=item["id"],
        tenant_id=item["tenant_id"],
        status=JobStatus(item["status"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        source=JobSource(item["job_source"]),
        input_key=item["input_key"],
        results_base=item["results_base"],
        dry_run=bool(item.get("dry_run")),
        metadata=dict(item.get("metadata") or {}),
        webhook=item.get("webhook"),
        webhook_events=list(item.get("webhook_events") or ["completed"]),
        parent_id=item.get("parent_id"),
        api=JobApi(item.get("job_api", JobApi.NATIVE.value)),
        input_file_id=item.get("input_file_id"),
        validation_started=parse_dt(item.get("validation_started")),
        started_at=parse_dt(item.get("started_at")),
        finalizing_at=parse_dt(item.get("finalizing_at")),
        stopped_at=parse_dt(item.get("stopped_at")),
        completed_at=parse_dt(item.get("completed_at")),
        total=int(item.get("line_total", 0)),
        completed=int(item.get("lines_completed", 0)),
        failed=int(item.get("lines_failed", 0)),
        invalid=int(item.get("lines_invalid", 0)),
        input_count=int(item.get("input_count", 0)),
        tokens=int(item.get("tokens", 0)),
        planned="chunk_count" in item,
        chunk_count=int(item.get("chunk_count", 0)),
        next_chunk=int(item.get("next_chunk", 0)),
        running={int(n): datetime.fromisoformat(at) for n, at in (item.get("chunks_running") or {}).items()},
        done_chunks={int(n) for n in item.get("done_chunks") or set()},
        errors=errors,
        error=error,
        estimate=estimate,
        output_key=item.get("output_key"),
        error_key=item.get("error_key"),
        outbox=tuple(sorted(PendingEvent.decode(v) for v in item.get("outbox") or ())),
    )


class JobStore:
    def __init__(self, table: Table, tenant_index: str, open_index: str, retention: timedelta) -> None:
        self.table = table
        self.tenant_index = tenant_index
        self.open_index = open_index
        self.retention = retention

    # -- reads ---------------------------------------------------------------------------------------------------

    def get(self, job_id: str, consistent: bool = True) -> Job | None:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(_pk(job_id)), ConsistentRead=consistent
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the job") from exc
        item = response.get("Item")
        return _to_job(from_attrs(item)) if item and item.get("kind", {}).get("S") == "job" else None

    def get_many(self, job_ids: Iterable[str]) -> dict[str, Job]:
        return {job.id: job for job in map(_to_job, self.table.batch_get((_pk(i) for i in job_ids), "jobs"))}

    def list_for_tenant(
        self, tenant_id: str, limit: int, cursor: str | None, api: JobApi = JobApi.NATIVE
    ) -> tuple[list[Job], str | None]:
        """Newest first: one page of the keys-only tenant index, then one batch read of the records."""
        partition = tenant_partition(tenant_id, api)
        query: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": self.tenant_index,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = decode_cursor(cursor, partition)
        try:
            response = self.table.client.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list jobs") from exc
        ids = [item["pk"]["S"].removeprefix("JOB#") for item in response.get("Items", [])]
        records = self.get_many(ids)
        last = response.get("LastEvaluatedKey")
        next_cursor = encode_cursor({k: last[k] for k in CURSOR_KEYS}) if last else None
        return [records[i] for i in ids if i in records], next_cursor

    def cursor_after(self, job: Job) -> str:
        """The list cursor that starts right after `job` (OpenAI pages by the last id seen, not by a cursor)."""
        start = {"pk": _pk(job.id), "gsi1pk": tenant_partition(job.tenant_id, job.api), "gsi1sk": _listed(job)}
        return encode_cursor({name: {"S": value} for name, value in start.items()})

    def active(self, limit: int = 100, partition: str = ACTIVE_JOBS, due_by: datetime | None = None) -> list[Job]:
        """Open jobs of one partition, least recently served (or, `due_by`, earliest due) first, at most `limit`:
        by default those that may still need work; WAITING_JOBS those that wait for their file; OUTBOX_JOBS
        finished jobs whose event is not queued yet."""
        ids: list[str] = []
        query: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": self.open_index,
            "KeyConditionExpression": "open_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
            "Limit": limit,
        }
        if due_by is not None:
            query["KeyConditionExpression"] += " AND open_due <= :due"
            query["ExpressionAttributeValues"][":due"] = {"S": iso(due_by)}
        try:
            while len(ids) < limit:
                response = self.table.client.query(**query)
                ids += [item["pk"]["S"].removeprefix("JOB#") for item in response.get("Items", [])]
                if "LastEvaluatedKey" not in response:
                    break
                query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
                query["Limit"] = limit - len(ids)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list active jobs") from exc
        records = self.get_many(ids)
        return [records[i] for i in ids if i in records]

    def in_flight(self) -> int:
        try:
            response = self.table.client.get_item(TableName=self.table.name, Key=key(_GATE), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the chunk gate") from exc
        return int(response.get("Item", {}).get("in_flight", {}).get("N", "0"))

    # -- creation ------------------------------------------------------------------------------------------------

    def create(self, job: Job, claim: IdempotencyClaim | None = None, open_limit: int | None = None) -> bool:
        """False when a job with this id exists (a duplicate S3 event for the same object version). With an
        idempotency claim, the key is claimed in the same transaction (IdempotencyKeyTaken when it was). With
        `open_limit`, the job joins its tenant's open jobs unless they are that many (OpenJobsFull)."""
        put: Any = {
            "TableName": self.table.name,
            "Item": to_attrs(_to_item(job, self.retention)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        items: list[Any] = [{"Put": put}]
        if claim is not None:
            items.append({"Put": idempotency_store().claim_put(claim, job.id, job.created_at)})
        if open_limit is not None:
            items.append({"Update": self._join_open_jobs(job, open_limit)})
        try:
            if len(items) == 1:
                self.table.client.put_item(**put)
            else:
                transact_write(self.table.client, items)
        except ClientError as exc:
            if condition_failed(exc, item=0):
                return False
            if claim is not None and condition_failed(exc, item=1):
                raise IdempotencyKeyTaken(claim.key) from exc
            if open_limit is not None and condition_failed(exc, item=len(items) - 1):
                raise OpenJobsFull(job.tenant_id) from exc
            raise translate(exc, "could not create the job") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not create the job") from exc
        return True

    def _join_open_jobs(self, job: Job, limit: int) -> dict[str, Any]:
        update = Update().add("open_ids", frozenset([_open_entry(job.id, job.created_at)])).set("kind", "open_jobs")
        ids = update.name("open_ids")
        update.when(f"attribute_not_exists({ids}) OR size({ids}) < {update.value(limit)}")
        return {"TableName": self.table.name, "Key": key(_open_jobs_pk(job.tenant_id)), **update.request()}

    def open_jobs(self, tenant_id: str) -> dict[str, datetime]:
        """The tenant's open-job set as it stands, job id -> created at (finished jobs may still be in it)."""
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(_open_jobs_pk(tenant_id)), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the open jobs") from exc
        entries = from_attrs(response.get("Item", {})).get("open_ids", set())
        return {job_id: datetime.fromisoformat(created) for created, _, job_id in map(_split_entry, entries)}

    def close_open_jobs(self, tenant_id: str, jobs: Mapping[str, datetime]) -> None:
        """Take finished jobs (id -> created at) out of the tenant's open-job set (again: nothing happens)."""
        update = Update().delete("open_ids", [_open_entry(job_id, created) for job_id, created in jobs.items()])
        try:
            self.table.client.update_item(
                TableName=self.table.name, Key=key(_open_jobs_pk(tenant_id)), **update.request()
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not update the open jobs") from exc

    # -- status transitions (each an edge of domain.jobs.SOURCES) ----------------------------------------------

    def begin_validation(self, job: Job, at: datetime, stale_before: datetime) -> bool:
        """awaiting_upload -> validating, or take over a validation that stopped (its function died)."""
        update = Update().set("validation_started", iso(at)).set("open_pk", ACTIVE_JOBS)
        status, started = update.name("status"), update.name("validation_started")
        update.when(
            f"{status} = {update.value(JobStatus.AWAITING_UPLOAD.value)} OR attribute_not_exists({started}) "
            f"OR {started} < {update.value(iso(stale_before))}"
        )
        sources = {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}
        return self._transition(job, JobStatus.VALIDATING, sources, update, at) is not None

    def plan(self, job: Job, to: JobStatus, plan: JobPlan, at: datetime, event: PendingEvent | None) -> Job | None:
        """validating -> in progress (chunks to run), validated (a dry run) or failed (the file is unusable)."""
        update = self._with_plan(Update(), plan, at)
        sources = {JobStatus.VALIDATING}
        return self._transition(job, to, sources, update, at, finishes=to.is_terminal, event=event)

    def plan_stopped(self, job: Job, plan: JobPlan, at: datetime) -> Job | None:
        """A job cancelled or expired while its file was validated keeps that status, but gets its plan: its
        assembly needs it."""
        update = self._with_plan(Update(), plan, at)
        return self._transition(job, job.status, {job.status}, update, at)

    def cancel(self, job: Job, at: datetime, event: PendingEvent | None) -> Job | None:
        """Stop launching chunks: a job without its file ends `cancelled` at once, one with a file is
        `cancelling` until assembly. None when the job was no longer in `job.status`."""
        update = Update().set("stopped_at", iso(at))
        finishes = closes_at_once(job.status)
        return self._transition(
            job, cancel_target(job.status), {job.status}, update, at, finishes=finishes, event=event
        )

    def expire(self, job: Job, at: datetime, event: PendingEvent | None) -> Job | None:
        """Past its completion window: no chunk is launched after this (a job without its file ends at once)."""
        update = Update().set("stopped_at", iso(at))
        finishes = closes_at_once(job.status)
        return self._transition(job, JobStatus.EXPIRED, {job.status}, update, at, finishes=finishes, event=event)

    def claim_assembly(self, job: Job, at: datetime, stale_before: datetime) -> Job | None:
        """One assembler per job: every chunk launched has finished, and nobody else is assembling (or they
        stopped long ago). An in-progress job becomes `finalizing`; cancelling and expired jobs keep theirs."""
        update = Update().set("assembly_started", iso(at))
        if job.status is JobStatus.IN_PROGRESS:
            update.set("finalizing_at", iso(at))
        started = update.name("assembly_started")
        update.when(f"size({update.name('chunks_running')}) = {update.value(0)}")
        update.when(f"attribute_exists({update.name('chunk_count')})")
        if job.status is JobStatus.IN_PROGRESS:
            update.when(f"{update.name('next_chunk')} = {update.name('chunk_count')}")  # every chunk launched
        update.when(f"attribute_not_exists({started}) OR {started} < {update.value(iso(stale_before))}")
        update.when(f"attribute_not_exists({update.name('completed_at')})")
        return self._transition(job, ASSEMBLING[job.status], {job.status}, update, at)

    def assembled(
        self,
        job: Job,
        output_key: str,
        error_key: str,
        extra_failed: int,
        at: datetime,
        event: PendingEvent | None,
    ) -> Job | None:
        """The result files exist: the job is finished. `extra_failed` counts lines that never ran (cancelled or
        expired before their chunk was launched)."""
        update = Update().set("output_key", output_key).set("error_key", error_key)
        update.add("lines_failed", extra_failed).remove("assembly_started")
        update.when(f"attribute_not_exists({update.name('completed_at')})")
        return self._transition(job, ASSEMBLED[job.status], {job.status}, update, at, finishes=True, event=event)

    # -- chunks and events (no status change) --------------------------------------------------------------------

    def claim_chunk(self, job: Job, max_in_flight: int, at: datetime) -> ClaimResult:
        """Take the job's next chunk and a place under the gate, both or neither."""
        n = job.next_chunk
        try:
            transact_write(
                self.table.client,
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": key(_GATE),
                            "UpdateExpression": "ADD in_flight :one",
                            "ConditionExpression": "attribute_not_exists(in_flight) OR in_flight < :max",
                            "ExpressionAttributeValues": to_attrs({":one": 1, ":max": max_in_flight}),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": key(_pk(job.id)),
                            "UpdateExpression": "SET next_chunk = :next, chunks_running.#n = :at, open_due = :served",
                            "ConditionExpression": "#status = :running AND next_chunk = :n AND chunk_count > :n",
                            "ExpressionAttributeNames": {"#status": "status", "#n": str(n)},
                            "ExpressionAttributeValues": to_attrs(
                                {
                                    ":next": n + 1,
                                    ":n": n,
                                    ":at": iso(at),
                                    ":served": _served(at, job.id),
                                    ":running": JobStatus.IN_PROGRESS.value,
                                }
                            ),
                        }
                    },
                ],
            )
        except ClientError as exc:
            if condition_failed(exc):
                return ClaimResult(Claim.GATE_FULL if condition_failed(exc, item=0) else Claim.REFUSED)
            raise translate(exc, "could not claim a chunk") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not claim a chunk") from exc
        return ClaimResult(Claim.CLAIMED, n)

    def finish_chunk(
        self,
        job_id: str,
        chunk: int,
        completed: int,
        failed: int,
        tokens: int = 0,
        also: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """The chunk out of `running` with its counts, and its place under the gate back (and the writes in `also`,
        such as the tenant's usage, in the same transaction). False when it was finished already (a duplicate
        notification): nothing moves twice."""
        try:
            transact_write(
                self.table.client,
                [
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": key(_pk(job_id)),
                            "UpdateExpression": (
                                "REMOVE chunks_running.#n "
                                "ADD lines_completed :c, lines_failed :f, done_chunks :set, tokens :t"
                            ),
                            "ConditionExpression": "attribute_exists(chunks_running.#n)",
                            "ExpressionAttributeNames": {"#n": str(chunk)},
                            "ExpressionAttributeValues": {
                                ":c": {"N": str(completed)},
                                ":f": {"N": str(failed)},
                                ":t": {"N": str(tokens)},
                                ":set": {"NS": [str(chunk)]},
                            },
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": key(_GATE),
                            "UpdateExpression": "ADD in_flight :minus",
                            "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                        }
                    },
                    *also,
                ],
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not finish a chunk") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not finish a chunk") from exc
        return True

    def progress_due(self, job_id: str, at: datetime, every: timedelta, event: PendingEvent) -> Job | None:
        """Claim the job's next progress event (at most one per `every`), kept on the record until queued."""
        update = Update().set("last_progress_event", iso(at)).add("outbox", {event.encode()})
        last = update.name("last_progress_event")
        update.when(f"attribute_not_exists({last}) OR {last} < {update.value(iso(at - every))}")
        update.when(f"attribute_not_exists({update.name('completed_at')})")  # a finished job has no more progress
        return self._write(job_id, update)

    def clear_outbox(self, job: Job, queued: Iterable[PendingEvent]) -> None:
        """Take queued events off the record. A finished job leaves the open index once nothing is left on it:
        decided on the record as it is now (an event added meanwhile keeps it there)."""
        sent = {event.encode() for event in queued}
        if job.completed_at is not None:
            closing = without_events(Update(), sent).remove("open_pk", "open_due")
            if self._write(job.id, closing.when("attribute_exists(pk)")) is not None:
                return
        if sent:  # something else is on it: the sweeper queues and closes it later
            self._write(job.id, Update().delete("outbox", sent).when("attribute_exists(pk)"))

    def outbox_due(self, job: Job, at: datetime) -> None:
        """Events could not be queued: make a finished job due for the sweeper's next run (open jobs are read by
        every run anyway)."""
        if job.completed_at is not None:
            update = Update().set("open_pk", OUTBOX_JOBS).set("open_due", iso(at))
            self._write(job.id, update.when(f"attribute_exists({update.name('completed_at')})"))

    # -- the one conditional write -------------------------------------------------------------------------------

    def _with_plan(self, update: Update, plan: JobPlan, at: datetime) -> Update:
        update.set("line_total", plan.total).set("lines_failed", plan.failed).set("lines_invalid", plan.failed)
        update.set("input_count", plan.input_count).set("chunk_count", plan.chunk_count).set("next_chunk", 0)
        update.set("chunks_running", {}).set("started_at", iso(at))
        update.set("first_errors", json.dumps([e.to_json() for e in plan.errors], separators=(",", ":")))
        if plan.estimate is not None:
            update.set("dry_run_estimate", json.dumps(plan.estimate.__dict__))
        if plan.error is not None:
            update.set("error_code", plan.error.code).set("error_message", plan.error.message)
        return update.when(f"attribute_not_exists({update.name('chunk_count')})")

    def _transition(
        self,
        job: Job,
        to: JobStatus,
        sources: set[JobStatus],
        update: Update,
        at: datetime,
        *,
        finishes: bool = False,
        event: PendingEvent | None = None,
    ) -> Job | None:
        """A status change along edges of the state machine (`sources`, some of the edges into `to`). A write that
        `finishes` the job takes it out of the open index or, when it has a webhook (events may be on it), into the
        outbox partition, due for the sweeper a little later, until the flush has queued what is on it."""
        check_transition(sources, to)
        if event is not None and not finishes:
            raise ValueError("only a write that finishes the job causes an event")
        update.when_in("status", {s.value for s in sources}).set("status", to.value)
        if finishes:
            update.set("completed_at", iso(at))
            if event is not None:
                update.add("outbox", {event.encode()})
            if job.webhook:
                update.set("open_pk", OUTBOX_JOBS).set("open_due", iso(at + OUTBOX_GRACE))
            else:
                update.remove("open_pk", "open_due")
        return self._write(job.id, update)

    def _write(self, job_id: str, update: Update) -> Job | None:
        """One conditional UpdateItem: the job as it now is, or None when the condition failed."""
        try:
            response = self.table.client.update_item(
                TableName=self.table.name, Key=key(_pk(job_id)), ReturnValues="ALL_NEW", **update.request()
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise translate(exc, "could not update the job") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not update the job") from exc
        return _to_job(from_attrs(response["Attributes"]))


@cached_factory
def job_store() -> JobStore:
    settings = get_settings()
    return JobStore(
        Table(settings.table_name),
        settings.tenant_index_name,
        settings.open_index_name,
        timedelta(days=settings.record_retention_days),
    )
