"""Status records: `PRED#<id>`, listed per tenant through the tenant index. Every change is a named, conditional
transition of the state machine in `domain.predictions`."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.idempotency import IdempotencyClaim, IdempotencyKeyTaken, IdempotencyStore, idempotency_store
from inference_core.dal.result_cache import cache_pk, live_entry, result_cache
from inference_core.dal.table import (
    CURSOR_KEYS,
    Table,
    Update,
    batch_get_across,
    decode_cursor,
    encode_cursor,
    from_attrs,
    iso,
    key,
    parse_dt,
    to_attrs,
    without_events,
)
from inference_core.domain.clock import utc_now
from inference_core.domain.predictions import (
    ALLOWED_SOURCES,
    REQUEUE_SOURCE,
    ErrorInfo,
    Prediction,
    PredictionStatus,
    Transition,
    event_on,
)
from inference_core.domain.result_cache import CachedEmbedding
from inference_core.domain.webhooks import OUTBOX_GRACE, PendingEvent, WebhookEvent
from inference_core.errors import DependencyError
from inference_core.settings import get_settings

_PARALLEL_WRITES = 16
_LIST_QUERIES = 2
_FILTERED_PAGE = 100
# Open (queued or running) records carry these, which puts them in the sparse open index the sweeper reads;
# spread over a few partitions so a busy system does not write one index partition.
_OPEN_SHARDS = 4
_OPEN_ATTRIBUTES = ("open_pk", "open_due")
# What a list shows, read from the records (the tenant index holds keys only, so status changes never write it).
_LISTED = (
    "pk",
    "id",
    "tenant_id",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "input_count",
    "metadata",
    "error_code",
    "error_message",
)


def _open_pk(prediction_id: str) -> str:
    return f"OPEN#{zlib.crc32(prediction_id.encode()) % _OPEN_SHARDS}"


@dataclass
class MarkResult:
    """Which predictions a batch-wide transition moved (and how they now are), which it found elsewhere, and which
    it could not reach."""

    moved: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    records: dict[str, Prediction] = field(default_factory=dict)


def _pk(prediction_id: str) -> str:
    return f"PRED#{prediction_id}"


def _to_item(prediction: Prediction, retention: timedelta) -> dict[str, Any]:
    created = iso(prediction.created_at)
    return {
        "pk": _pk(prediction.id),
        "kind": "prediction",
        "id": prediction.id,
        "tenant_id": prediction.tenant_id,
        "status": prediction.status.value,
        "created_at": created,
        "input_count": prediction.input_count,
        "tokens": prediction.tokens or None,
        "parameters": json.dumps(prediction.parameters, separators=(",", ":")),
        "metadata": prediction.metadata or None,
        "webhook": prediction.webhook,
        "webhook_events": prediction.webhook_events if prediction.webhook else None,
        "gsi1pk": f"TENANT#{prediction.tenant_id}",
        "gsi1sk": f"{created}#{prediction.id}",
        "expires_at": int((prediction.created_at + retention).timestamp()),
        # Set only for a record created finished (answered from the result cache at submit).
        "started_at": iso(prediction.started_at),
        "completed_at": iso(prediction.completed_at),
        "output_location": prediction.output_location,
        "output_range": f"{prediction.output_range[0]}-{prediction.output_range[1]}"
        if prediction.output_range
        else None,
    }


def _to_prediction(item: Mapping[str, Any]) -> Prediction:
    error = None
    if item.get("error_code"):
        error = ErrorInfo(code=item["error_code"], message=item.get("error_message", ""))
    return Prediction(
        id=item["id"],
        tenant_id=item["tenant_id"],
        status=PredictionStatus(item["status"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        input_count=int(item["input_count"]),
        tokens=int(item.get("tokens", 0)),
        parameters=json.loads(item.get("parameters") or "{}"),
        metadata=dict(item.get("metadata") or {}),
        webhook=item.get("webhook"),
        webhook_events=list(item.get("webhook_events") or ["completed"]),
        outbox=_outbox(item),
        started_at=parse_dt(item.get("started_at")),
        completed_at=parse_dt(item.get("completed_at")),
        batch_id=item.get("batch_id"),
        output=json.loads(item["output"]) if item.get("output") else None,
        output_location=item.get("output_location"),
        output_range=_parse_range(item.get("output_range")),
        error=error,
    )


def _outbox(item: Mapping[str, Any]) -> tuple[PendingEvent, ...]:
    pending = {PendingEvent.decode(value) for value in item.get("outbox") or ()}
    if item.get("webhook_pending"):  # kept by records written before the outbox
        pending.add(PendingEvent.of(item["id"], WebhookEvent(item["webhook_pending"])))
    return tuple(sorted(pending))


def _parse_range(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    start, _, end = str(value).partition("-")
    return int(start), int(end)


class PredictionStore:
    def __init__(
        self,
        table: Table,
        index_name: str,
        open_index_name: str,
        retention: timedelta,
        idempotency: IdempotencyStore,
    ) -> None:
        self.table = table
        self.index_name = index_name
        self.open_index_name = open_index_name
        self.retention = retention
        self.idempotency = idempotency

    # -- create and read ---------------------------------------------------------------------------------------

    def create(
        self,
        prediction: Prediction,
        sweep_at: datetime,
        claim: IdempotencyClaim | None = None,
        also: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Write a new record, due for the sweeper at `sweep_at` unless it finishes first (one created finished, with
        a webhook, keeps its event until it is queued); with an idempotency claim, claim the key in the same
        transaction, and so `also` (writes that must happen exactly once with the record, such as its usage)."""
        item = _to_item(prediction, self.retention)
        if prediction.status.is_terminal and prediction.webhook:
            event = event_on(prediction, prediction.status)
            item["outbox"] = {event.encode()} if event else None
            sweep_at = prediction.created_at + OUTBOX_GRACE
        if not prediction.status.is_terminal or prediction.webhook:
            item |= {"open_pk": _open_pk(prediction.id), "open_due": iso(sweep_at)}
        put: Any = {
            "TableName": self.table.name,
            "Item": to_attrs(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        ddb = self.table.client
        try:
            if claim is None and not also:
                ddb.put_item(**put)
            else:
                claimed: list[Any] = []
                if claim is not None:
                    claimed = [{"Put": self.idempotency.claim_put(claim, prediction.id, prediction.created_at)}]
                items: list[Any] = [{"Put": put}, *claimed, *also]
                ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if claim is not None and condition_failed(exc, item=1):
                raise IdempotencyKeyTaken(claim.key) from exc
            raise translate(exc, "could not store the prediction") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not store the prediction") from exc

    def get(self, prediction_id: str, consistent: bool = False) -> Prediction | None:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(_pk(prediction_id)), ConsistentRead=consistent
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the prediction") from exc
        return _to_prediction(from_attrs(response["Item"])) if "Item" in response else None

    def get_many(self, prediction_ids: Iterable[str]) -> dict[str, Prediction]:
        items = self.table.batch_get((_pk(i) for i in prediction_ids), "predictions")
        return {prediction.id: prediction for prediction in map(_to_prediction, items)}

    def get_many_with_cached(
        self, prediction_ids: Sequence[str], cache_keys: Iterable[str], now: datetime
    ) -> tuple[dict[str, Prediction], dict[str, CachedEmbedding]]:
        """The records (strongly consistent) and the live cache entries (eventually consistent) of a batch in one
        BatchGetItem across both tables (at most 100 keys in all): the lookup adds no request to a batch."""
        cache = result_cache()
        records, entries = batch_get_across(
            [
                (self.table, [_pk(i) for i in prediction_ids], True),
                (cache.table, [cache_pk(k) for k in cache_keys], False),
            ],
            "predictions",
        )
        predictions = {prediction.id: prediction for prediction in map(_to_prediction, records)}
        return predictions, dict(found for item in entries if (found := live_entry(item, now)) is not None)

    def list_for_tenant(
        self, tenant_id: str, limit: int, status: PredictionStatus | None, cursor: str | None
    ) -> tuple[list[Prediction], str | None]:
        """Newest first, with bounded work whatever the filter: at most `_LIST_QUERIES` pages of the keys-only
        tenant index, each read back with one BatchGetItem of at most `_FILTERED_PAGE` records when a status filter
        is set. A sparse filter therefore answers fewer than `limit` items (maybe none) with a cursor to go on
        from, instead of reading the whole partition."""
        partition = f"TENANT#{tenant_id}"
        start_key = decode_cursor(cursor, partition) if cursor else None
        found: list[Prediction] = []
        for _ in range(_LIST_QUERIES):
            query: dict[str, Any] = {
                "TableName": self.table.name,
                "IndexName": self.index_name,
                "KeyConditionExpression": "gsi1pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": partition}},
                "ScanIndexForward": False,
                "Limit": limit if status is None else max(limit, _FILTERED_PAGE),
            }
            if start_key:
                query["ExclusiveStartKey"] = start_key
            try:
                response = self.table.client.query(**query)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "could not list predictions") from exc
            start_key = response.get("LastEvaluatedKey")
            keys = response.get("Items", [])
            records = {
                item["pk"]: item
                for item in self.table.batch_get(
                    (k["pk"]["S"] for k in keys), "predictions", consistent=False, attributes=_LISTED
                )
            }
            for index_key in keys:
                item = records.get(index_key["pk"]["S"])  # gone: its time to live passed since the index was read
                if item is None or (status is not None and item["status"] != status.value):
                    continue
                found.append(_to_prediction(item))
                if len(found) == limit:
                    # Go on after the last item returned, which may sit mid-page.
                    more = bool(start_key) or index_key is not keys[-1]
                    return found, encode_cursor({k: index_key[k] for k in CURSOR_KEYS}) if more else None
            if not start_key:
                break
        return found, encode_cursor(start_key) if start_key else None

    # -- transitions ---------------------------------------------------------------------------------------------

    # Every transition takes the record as it was read (`record`, when the caller has it): its webhook decides
    # which event, if any, the write keeps on it (domain.predictions.event_on).

    def mark_running(
        self,
        prediction_ids: Sequence[str],
        batch_id: str,
        started_at: datetime,
        records: Mapping[str, Prediction] | None = None,
    ) -> MarkResult:
        """queued -> running in `batch_id`, for each prediction on its own (in parallel)."""
        records = records or {}
        return self._for_each(
            prediction_ids,
            lambda pid: self._move(
                pid,
                PredictionStatus.RUNNING,
                ALLOWED_SOURCES[PredictionStatus.RUNNING],
                Update().set("started_at", iso(started_at)).set("batch_id", batch_id),
                at=started_at,
                record=records.get(pid),
            ),
        )

    def requeue(self, prediction_ids: Sequence[str], batch_id: str) -> MarkResult:
        """running -> queued, only for predictions still in `batch_id` (its invocation was refused)."""
        return self._for_each(
            prediction_ids,
            lambda pid: self._move(
                pid,
                PredictionStatus.QUEUED,
                {REQUEUE_SOURCE},
                Update().remove("started_at", "batch_id"),
                at=utc_now(),
                batch_id=batch_id,
            ),
        )

    def succeed(
        self,
        prediction_id: str,
        batch_id: str,
        output_location: str,
        output_range: tuple[int, int] | None,
        completed_at: datetime,
        *,
        record: Prediction | None = None,
    ) -> Prediction | None:
        """running in `batch_id` -> succeeded, pointing at its output (a byte range of the batch output, or a whole
        object). Nothing large is written to the table. None when the record had moved on."""
        update = Update().set("completed_at", iso(completed_at)).set("output_location", output_location)
        if output_range is not None:
            update.set("output_range", f"{output_range[0]}-{output_range[1]}")
        return self._move(
            prediction_id,
            PredictionStatus.SUCCEEDED,
            ALLOWED_SOURCES[PredictionStatus.SUCCEEDED],
            update,
            at=completed_at,
            batch_id=batch_id,
            record=record,
        ).updated

    def fail(
        self,
        prediction_id: str,
        error: ErrorInfo,
        completed_at: datetime,
        batch_id: str | None = None,
        *,
        record: Prediction | None = None,
    ) -> Prediction | None:
        """With `batch_id`: running in that batch -> failed. Without: queued -> failed (it never left the queue)."""
        return self._move(
            prediction_id,
            PredictionStatus.FAILED,
            {PredictionStatus.RUNNING} if batch_id else {PredictionStatus.QUEUED},
            _with_error(Update().set("completed_at", iso(completed_at)), error),
            at=completed_at,
            batch_id=batch_id,
            record=record,
        ).updated

    def expire(
        self, prediction_id: str, error: ErrorInfo, at: datetime, *, record: Prediction | None = None
    ) -> Prediction | None:
        return self._move(
            prediction_id,
            PredictionStatus.EXPIRED,
            ALLOWED_SOURCES[PredictionStatus.EXPIRED],
            _with_error(Update().set("completed_at", iso(at)), error),
            at=at,
            record=record,
        ).updated

    def cancel(self, prediction_id: str, at: datetime, *, record: Prediction | None = None) -> Transition:
        return self._move(
            prediction_id,
            PredictionStatus.CANCELLED,
            ALLOWED_SOURCES[PredictionStatus.CANCELLED],
            Update().set("completed_at", iso(at)),
            at=at,
            record=record,
        )

    def due_for_sweep(self, now: datetime, limit: int) -> list[str]:
        """Ids of open predictions whose sweep time has passed, at most `limit` per index partition."""
        due: list[str] = []
        for shard in range(_OPEN_SHARDS):
            try:
                response = self.table.client.query(
                    TableName=self.table.name,
                    IndexName=self.open_index_name,
                    KeyConditionExpression="open_pk = :pk AND open_due <= :now",
                    ExpressionAttributeValues={":pk": {"S": f"OPEN#{shard}"}, ":now": {"S": iso(now) or ""}},
                    Limit=limit,
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "could not read the open predictions") from exc
            due += [item["pk"]["S"].removeprefix("PRED#") for item in response.get("Items", [])]
        return due

    def sweep_later(self, prediction_id: str, at: datetime) -> None:
        """Move an open prediction's sweep time (it was found early, or still has time)."""
        self._write(prediction_id, Update().set("open_due", iso(at)).when("attribute_exists(open_pk)"))

    def close(self, prediction_id: str) -> None:
        """Take a finished prediction with nothing left to queue out of the sweeper's index."""
        update = Update().remove(*_OPEN_ATTRIBUTES).when("attribute_exists(pk)")
        self._write(
            prediction_id, update.when("attribute_not_exists(outbox)").when("attribute_not_exists(webhook_pending)")
        )

    def clear_outbox(self, prediction: Prediction, queued: Iterable[PendingEvent]) -> None:
        """Take queued events off the record. A finished prediction leaves the sweeper's index once nothing is left
        on it: decided on the record as it is now (an event added meanwhile keeps it there)."""
        sent = {event.encode() for event in queued}
        if prediction.status.is_terminal:
            closing = without_events(Update(), sent).remove(*_OPEN_ATTRIBUTES, "webhook_pending")
            if self._write(prediction.id, closing.when("attribute_exists(pk)")):
                return
        if sent:  # something else is on it (or it was kept the old way): the sweeper closes it later
            self._write(
                prediction.id, Update().delete("outbox", sent).remove("webhook_pending").when("attribute_exists(pk)")
            )

    def outbox_due(self, prediction: Prediction, at: datetime) -> None:
        """Events could not be queued: make the record due for the sweeper's next run."""
        update = Update().set("open_pk", _open_pk(prediction.id)).set("open_due", iso(at))
        self._write(prediction.id, update.when("attribute_exists(pk)"))

    def _write(self, prediction_id: str, update: Update) -> bool:
        """A bookkeeping write (no status change); False when the record no longer meets its condition."""
        try:
            self.table.client.update_item(TableName=self.table.name, Key=key(_pk(prediction_id)), **update.request())
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not update the prediction") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not update the prediction") from exc
        return True

    def _for_each(self, prediction_ids: Sequence[str], move: Callable[[str], Transition]) -> MarkResult:
        def attempt(prediction_id: str) -> tuple[str, Transition | None]:
            try:
                return prediction_id, move(prediction_id)
            except DependencyError:  # this one alone is left as it was; the caller retries or reports it
                return prediction_id, None

        result = MarkResult()
        if not prediction_ids:
            return result
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_WRITES, len(prediction_ids))) as pool:
            for prediction_id, moved in pool.map(attempt, prediction_ids):
                if moved is None:
                    result.unavailable.append(prediction_id)
                elif moved.updated is None:
                    result.refused.append(prediction_id)
                else:
                    result.moved.append(prediction_id)
                    result.records[prediction_id] = moved.updated
        return result

    def _move(
        self,
        prediction_id: str,
        to_status: PredictionStatus,
        allowed_from: Iterable[PredictionStatus],
        update: Update,
        *,
        at: datetime,
        batch_id: str | None = None,
        record: Prediction | None = None,
    ) -> Transition:
        """One conditional UpdateItem: the status must be one of `allowed_from` (and the batch `batch_id`). The event
        this move causes is kept on the record. A terminal status takes the record out of the sweeper's index,
        unless it has a webhook (events may be left on it): then it stays, due a little later, until the outbox
        flush (or the sweeper) has queued what is on it."""
        update.when("attribute_exists(pk)").when_in("status", {s.value for s in allowed_from})
        if batch_id is not None:
            update.when(f"{update.name('batch_id')} = {update.value(batch_id)}")
        update.set("status", to_status.value)
        event = event_on(record, to_status) if record is not None else None
        if event is not None:
            update.add("outbox", {event.encode()})
        if to_status.is_terminal and (record is None or not record.webhook):
            update.remove(*_OPEN_ATTRIBUTES)
        elif to_status.is_terminal:
            update.set("open_pk", _open_pk(prediction_id)).set("open_due", iso(at + OUTBOX_GRACE))
        try:
            response = self.table.client.update_item(
                TableName=self.table.name,
                Key=key(_pk(prediction_id)),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update.request(),
            )
        except ClientError as exc:
            if condition_failed(exc):
                failed: Any = exc.response
                old = failed.get("Item")
                return Transition(updated=None, current=_to_prediction(from_attrs(old)) if old else None)
            raise translate(exc, "could not update the prediction") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not update the prediction") from exc
        return Transition(updated=_to_prediction(from_attrs(response["Attributes"])))


def _with_error(update: Update, error: ErrorInfo) -> Update:
    return update.set("error_code", error.code).set("error_message", error.message)


@cached_factory
def prediction_store() -> PredictionStore:
    settings = get_settings()
    return PredictionStore(
        Table(settings.table_name),
        settings.tenant_index_name,
        settings.open_index_name,
        timedelta(days=settings.record_retention_days),
        idempotency_store(),
    )
