"""Job records `JOB#<id>` and the bulk-chunk gate `GATE#bulk-chunks`.

A job record carries counters, not lines. Every chunk moves through it twice, each time in one transaction with
the gate: a claim (`next_chunk` + 1, the chunk into `running`, the gate's `in_flight` + 1 while under its bound)
and a finish (the chunk out of `running`, its counts added, the gate - 1). A chunk that is not in `running`
cannot be finished again, so counters move exactly once however often a notification arrives.

Active jobs (validating, in progress, cancelling, expired before assembly) sit in the sparse open index under one
partition, ordered by when they were last served: the scheduler reads the least recently served first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import AwsFailure, classify, error_code, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.idempotency import IdempotencyClaim, IdempotencyKeyTaken, idempotency_store
from inference_core.dal.table import (
    CURSOR_KEYS,
    Table,
    decode_cursor,
    encode_cursor,
    from_attrs,
    iso,
    key,
    parse_dt,
    to_attrs,
)
from inference_core.dal.webhook_events import webhook_events
from inference_core.domain.jobs import Estimate, Job, JobSource, JobStatus, LineError
from inference_core.domain.predictions import ErrorInfo
from inference_core.domain.webhooks import WebhookEvent
from inference_core.settings import get_settings

ACTIVE_JOBS = "JOBS"
# Jobs still waiting for their file sit apart, so that many unused upload links never crowd the scheduler's read.
WAITING_JOBS = "JOBS#WAITING"
_GATE = "GATE#bulk-chunks"


def _pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _served(at: datetime, job_id: str) -> str:
    return f"{iso(at)}#{job_id}"


class Claim(StrEnum):
    CLAIMED = "claimed"
    GATE_FULL = "gate_full"  # as many bulk chunks are in flight as the endpoint is allowed
    REFUSED = "refused"  # the job moved on (another scheduler took the chunk, or it stopped)


@dataclass(frozen=True)
class ClaimResult:
    outcome: Claim
    chunk: int = -1


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
        "line_total": 0,
        "lines_completed": 0,
        "lines_failed": 0,
        "gsi1pk": f"JOBS#{job.tenant_id}",
        "gsi1sk": f"{created}#{job.id}",
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
        started_at=parse_dt(item.get("started_at")),
        completed_at=parse_dt(item.get("completed_at")),
        total=int(item.get("line_total", 0)),
        completed=int(item.get("lines_completed", 0)),
        failed=int(item.get("lines_failed", 0)),
        invalid=int(item.get("lines_invalid", 0)),
        input_count=int(item.get("input_count", 0)),
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

    def list_for_tenant(self, tenant_id: str, limit: int, cursor: str | None) -> tuple[list[Job], str | None]:
        """Newest first: one index page of ids, then one batch read of the records (the index projects only
        what a prediction list shows)."""
        partition = f"JOBS#{tenant_id}"
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
        ids = [item["id"]["S"] for item in response.get("Items", [])]
        records = self.get_many(ids)
        last = response.get("LastEvaluatedKey")
        next_cursor = encode_cursor({k: last[k] for k in CURSOR_KEYS}) if last else None
        return [records[i] for i in ids if i in records], next_cursor

    def active(self, limit: int = 100, partition: str = ACTIVE_JOBS) -> list[Job]:
        """Jobs that may still need work (or, with WAITING_JOBS, that wait for their file), least recently served
        first, at most `limit`."""
        ids: list[str] = []
        query: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": self.open_index,
            "KeyConditionExpression": "open_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
            "Limit": limit,
        }
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

    # -- transitions ---------------------------------------------------------------------------------------------

    def create(self, job: Job, claim: IdempotencyClaim | None = None) -> bool:
        """False when a job with this id exists (a duplicate S3 event for the same object version). With an
        idempotency claim, the key is claimed in the same transaction (IdempotencyKeyTaken when it was)."""
        put: Any = {
            "TableName": self.table.name,
            "Item": to_attrs(_to_item(job, self.retention)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            if claim is None:
                self.table.client.put_item(**put)
            else:
                claim_put: Any = idempotency_store().claim_put(claim, job.id, job.created_at)
                self.table.client.transact_write_items(TransactItems=[{"Put": put}, {"Put": claim_put}])
        except ClientError as exc:
            if classify(exc) is AwsFailure.CONDITION_FAILED:
                return False
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if claim is not None and reasons[1:2] == ["ConditionalCheckFailed"]:
                raise IdempotencyKeyTaken(claim.key) from exc
            raise translate(exc, "could not create the job") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not create the job") from exc
        return True

    def begin_validation(self, job_id: str, at: datetime, stale_before: datetime) -> bool:
        """awaiting_upload -> validating, or take over a validation that stopped (its function died)."""
        return self._update(
            job_id,
            "SET #status = :validating, validation_started = :at, open_pk = :active",
            "#status = :awaiting OR (#status = :validating AND "
            "(attribute_not_exists(validation_started) OR validation_started < :stale))",
            {
                ":validating": JobStatus.VALIDATING.value,
                ":awaiting": JobStatus.AWAITING_UPLOAD.value,
                ":at": iso(at),
                ":stale": iso(stale_before),
                ":active": ACTIVE_JOBS,
            },
        )

    def planned(
        self,
        job_id: str,
        *,
        from_status: JobStatus,
        status: JobStatus,
        total: int,
        failed: int,
        input_count: int,
        chunk_count: int,
        errors: list[LineError],
        at: datetime,
        estimate: Estimate | None = None,
        error: ErrorInfo | None = None,
    ) -> bool:
        """validating -> in_progress (chunks to run), validated (dry run) or failed (the file is unusable). A job
        cancelled or expired while it was validated keeps that status (`from_status` = `status`) but gets its plan,
        which its assembly needs."""
        values: dict[str, Any] = {
            ":to": status.value,
            ":from": from_status.value,
            ":total": total,
            ":failed": failed,
            ":inputs": input_count,
            ":chunks": chunk_count,
            ":errors": json.dumps([e.to_json() for e in errors], separators=(",", ":")),
            ":at": iso(at),
            ":zero": 0,
            ":empty": {},
        }
        sets = [
            "#status = :to",
            "line_total = :total",
            "lines_failed = :failed",
            "lines_invalid = :failed",
            "input_count = :inputs",
            "chunk_count = :chunks",
            "next_chunk = :zero",
            "chunks_running = :empty",
            "first_errors = :errors",
            "started_at = :at",
        ]
        if estimate is not None:
            values[":estimate"] = json.dumps(estimate.__dict__)
            sets.append("dry_run_estimate = :estimate")
        if error is not None:
            values[":code"], values[":message"] = error.code, error.message
            sets += ["error_code = :code", "error_message = :message"]
        update = "SET " + ", ".join(sets)
        if status.is_terminal:
            values[":done"] = iso(at)
            update += ", completed_at = :done REMOVE open_pk, open_due"
        return self._update(
            job_id, update, "#status = :from AND attribute_not_exists(chunk_count)", values, status.is_terminal
        )

    def claim_chunk(self, job: Job, max_in_flight: int, at: datetime) -> ClaimResult:
        """Take the job's next chunk and a place under the gate, both or neither."""
        n = job.next_chunk
        try:
            self.table.client.transact_write_items(
                TransactItems=[
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
                ]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
                gate_full = reasons[0] == "ConditionalCheckFailed"
                return ClaimResult(Claim.GATE_FULL if gate_full else Claim.REFUSED)
            raise translate(exc, "could not claim a chunk") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not claim a chunk") from exc
        return ClaimResult(Claim.CLAIMED, n)

    def finish_chunk(self, job_id: str, chunk: int, completed: int, failed: int) -> bool:
        """The chunk out of `running` with its counts, and its place under the gate back. False when it was
        finished already (a duplicate notification): nothing moves twice."""
        try:
            self.table.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": key(_pk(job_id)),
                            "UpdateExpression": (
                                "REMOVE chunks_running.#n ADD lines_completed :c, lines_failed :f, done_chunks :set"
                            ),
                            "ConditionExpression": "attribute_exists(chunks_running.#n)",
                            "ExpressionAttributeNames": {"#n": str(chunk)},
                            "ExpressionAttributeValues": {
                                ":c": {"N": str(completed)},
                                ":f": {"N": str(failed)},
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
                ]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons:
                return False
            raise translate(exc, "could not finish a chunk") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not finish a chunk") from exc
        return True

    def stop(
        self, job_id: str, to: JobStatus, allowed_from: Iterable[JobStatus], at: datetime, close: bool
    ) -> Job | None:
        """Cancel or expire: no chunk is launched after this. `close` finishes a job that has nothing to assemble
        (its file never came); the others are finished by assembly. None when the job was elsewhere."""
        sources = sorted(s.value for s in allowed_from)
        values: dict[str, Any] = {":to": to.value, ":at": iso(at)}
        values.update({f":s{i}": s for i, s in enumerate(sources)})
        condition = f"#status IN ({', '.join(f':s{i}' for i in range(len(sources)))})"
        update = "SET #status = :to, stopped_at = :at"
        if close:
            update += ", completed_at = :at REMOVE open_pk, open_due"
        return self._move(job_id, update, condition, values, finishes=close)

    def claim_assembly(self, job_id: str, status: JobStatus, to: JobStatus, at: datetime, stale: datetime) -> bool:
        """One assembler per job: every chunk launched has finished, and nobody else is assembling (or they
        stopped long ago). An in-progress job becomes `finalizing`; cancelling and expired jobs keep theirs."""
        return self._update(
            job_id,
            "SET #status = :to, assembly_started = :at",
            "#status = :from AND size(chunks_running) = :zero AND "
            "(#status <> :running OR next_chunk = chunk_count) AND "
            "(attribute_not_exists(assembly_started) OR assembly_started < :stale) AND attribute_exists(open_pk) AND "
            "attribute_exists(chunk_count)",
            {
                ":to": to.value,
                ":from": status.value,
                ":at": iso(at),
                ":zero": 0,
                ":running": JobStatus.IN_PROGRESS.value,
                ":stale": iso(stale),
            },
        )

    def assembled(
        self,
        job_id: str,
        status: JobStatus,
        to: JobStatus,
        output_key: str,
        error_key: str,
        extra_failed: int,
        at: datetime,
    ) -> bool:
        """The result files exist: the job is finished. `extra_failed` counts lines that never ran (cancelled or
        expired before their chunk was launched)."""
        return self._update(
            job_id,
            "SET #status = :to, completed_at = :at, output_key = :out, error_key = :err "
            "ADD lines_failed :extra REMOVE open_pk, open_due, assembly_started",
            "#status = :from AND attribute_exists(open_pk)",
            {
                ":to": to.value,
                ":from": status.value,
                ":at": iso(at),
                ":out": output_key,
                ":err": error_key,
                ":extra": extra_failed,
            },
            finishes=True,
        )

    def progress_due(self, job_id: str, at: datetime, every: timedelta) -> Job | None:
        """Claim the job's next progress event: at most one per `every`, only for webhooks that asked for them."""
        return self._move(
            job_id,
            "SET last_progress_event = :at",
            "contains(webhook_events, :progress) AND "
            "(attribute_not_exists(last_progress_event) OR last_progress_event < :cutoff)",
            {":at": iso(at), ":cutoff": iso(at - every), ":progress": "progress"},
        )

    def _update(
        self, job_id: str, update: str, condition: str, values: Mapping[str, Any], finishes: bool = False
    ) -> bool:
        return self._move(job_id, update, condition, values, finishes) is not None

    def _move(
        self, job_id: str, update: str, condition: str, values: Mapping[str, Any], finishes: bool = False
    ) -> Job | None:
        """One conditional UpdateItem. `finishes`: this write ends the job (its webhook event follows it)."""
        names = {"#status": "status"} if "#status" in update + condition else {}
        try:
            response = self.table.client.update_item(
                TableName=self.table.name,
                Key=key(_pk(job_id)),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=to_attrs(values),
                ReturnValues="ALL_NEW",
                **({"ExpressionAttributeNames": names} if names else {}),  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if classify(exc) is AwsFailure.CONDITION_FAILED:
                return None
            raise translate(exc, "could not update the job") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not update the job") from exc
        job = _to_job(from_attrs(response["Attributes"]))
        if finishes and job.webhook and "completed" in job.webhook_events:
            # After the write that finished it (assembly, an unusable file, a dry run, a close): emitted once.
            webhook_events().emit(WebhookEvent.JOB_COMPLETED, "job", job.id, job.tenant_id, job.webhook)
        return job


@cached_factory
def job_store() -> JobStore:
    settings = get_settings()
    return JobStore(
        Table(settings.table_name),
        settings.tenant_index_name,
        settings.open_index_name,
        timedelta(days=settings.record_retention_days),
    )
