"""moto made to behave as AWS does under the local stack's load, for its in-process server.

DynamoDB under concurrent requests:

moto 5 snapshots every table a TransactWriteItems names (copy.deepcopy) and, when the transaction is cancelled (a
condition check failed: routine for the bulk-chunk gate and duplicate notifications), puts that snapshot back,
dropping every write other threads made meanwhile; concurrent reads can also fail with "dictionary changed size
during iteration". DynamoDB's transactions are atomic and isolated, and the product relies on that (a finished
chunk must not reappear as running). Here every DynamoDB request to moto runs alone, and a cancelled transaction
restores only the items it touched.

SQS with a deep queue: moto 5's ReceiveMessage costs O(queue depth) per message it returns (its retention check
builds every queue attribute, each approximate count a scan of all messages, each message's visibility a datetime
computation), so with thousands queued one receive of 10 takes the server's CPU for tenths of a second and every
consumer of every queue waits behind it; each deleted message cost two scans of the queue that built every
message's list of receipt handles, and rebuilt the queue's list. SQS does not slow down with depth; here the
retention check reads the one attribute it needs, message times come from `time.time()`, and a delete stops at
its message (consumers take the oldest first, so it is near the front).

The server's dispatch: it lists moto's package directory (a stat per service) on every request to find the
backend; here the list is read once.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from datetime import UTC, datetime
from typing import Any

_MOTO_DYNAMODB = threading.RLock()


def serialize_dynamodb() -> None:
    """Patch moto (idempotent: a second call changes nothing)."""
    if getattr(serialize_dynamodb, "done", False):
        return
    serialize_dynamodb.done = True  # type: ignore[attr-defined]
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _MOTO_DYNAMODB:
            return call_action(self, *args, **kwargs)

    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]

    class NoTableCopy:
        """The module's `copy`: tables are not copied (see below), anything else is."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    models.copy = NoTableCopy  # type: ignore[attr-defined,assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def item_rollback(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            with contextlib.suppress(Exception):  # malformed: the transaction itself says why
                _, op = next(iter(entry.items()))
                table = self.get_table(op["TableName"])
                key = op.get("Key") or {
                    name: op["Item"][name] for name in (table.hash_key_attr, table.range_key_attr) if name
                }
                hash_key, range_key = self.get_keys_value(table, key)
                saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                if item is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is not None:
                    table.items[hash_key][range_key] = item
                else:
                    table.items[hash_key] = item
            raise

    models.DynamoDBBackend.transact_write_items = item_rollback  # type: ignore[method-assign]


def fast_sqs_receive() -> None:
    """Patch moto's SQS (idempotent): ReceiveMessage and DeleteMessage no longer slow down with the queue's depth."""
    if getattr(fast_sqs_receive, "done", False):
        return
    fast_sqs_receive.done = True  # type: ignore[attr-defined]
    import moto.sqs.models as sqs
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    def unix_time(dt: datetime | None = None) -> float:
        if dt is None:
            return time.time()
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()  # moto's datetimes are naive UTC

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleted before: SQS accepts a second delete
        for position, message in enumerate(self._messages):
            if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                del self._messages[position]
                return
        raise ReceiptHandleIsInvalid()

    sqs.unix_time = unix_time  # type: ignore[attr-defined]
    sqs.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]
    sqs.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    sqs.Queue.delete_message = delete_message  # type: ignore[method-assign]


def fast_dispatch() -> None:
    """Patch moto's server (idempotent): the list of its service modules is read once, not on every request."""
    import moto.backends as backends

    if getattr(backends.list_of_moto_modules, "cached", False):
        return
    modules = frozenset(backends.list_of_moto_modules())

    def list_of_moto_modules() -> frozenset[str]:
        return modules

    list_of_moto_modules.cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules
