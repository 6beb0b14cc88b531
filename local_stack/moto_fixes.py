"""moto's DynamoDB made to behave as DynamoDB does under concurrent requests, for the local stack's in-process server.

moto 5 snapshots every table a TransactWriteItems names (copy.deepcopy) and, when the transaction is cancelled (a
condition check failed: routine for the bulk-chunk gate and duplicate notifications), puts that snapshot back,
dropping every write other threads made meanwhile; concurrent reads can also fail with "dictionary changed size
during iteration". DynamoDB's transactions are atomic and isolated, and the product relies on that (a finished
chunk must not reappear as running). Here every DynamoDB request to moto runs alone, and a cancelled transaction
restores only the items it touched.
"""

from __future__ import annotations

import contextlib
import copy
import threading
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
