"""Result cache entries, in a table of their own: `CACHE#<key>` -> one input's embedding, deleted by DynamoDB TTL
after the cache's TTL.

Reads are BatchGetItem (100 keys a request, eventually consistent: an entry is written once and never changes);
writes are BatchWriteItem (25 a request). TTL deletion lags by up to a few days, so reads skip expired entries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, to_attrs
from inference_core.domain.result_cache import CachedEmbedding
from inference_core.errors import TransientError
from inference_core.settings import get_settings

CACHE_PK_PREFIX = "CACHE#"
_BATCH_WRITE_LIMIT = 25
_WRITE_ROUNDS = 5


def cache_pk(cache_key: str) -> str:
    return CACHE_PK_PREFIX + cache_key


def live_entry(item: Mapping[str, Any], now: datetime) -> tuple[str, CachedEmbedding] | None:
    """The entry an item holds, or None when it has expired (and DynamoDB has not deleted it yet) or is not one
    this code wrote (a miss costs a recomputation; a wrong vector would be served)."""
    try:
        if int(item.get("expires_at", 0)) <= now.timestamp():
            return None
        raw, model, truncated = item["vector"], item["model"], item["truncated"]
        if not isinstance(raw, Binary | bytes):
            return None
        vector = bytes(raw)
    except (KeyError, TypeError, ValueError):
        return None
    if not vector or len(vector) % 4 or not isinstance(model, str) or not isinstance(truncated, bool):
        return None
    return str(item["pk"]).removeprefix(CACHE_PK_PREFIX), CachedEmbedding(model, vector, truncated)


class ResultCache:
    def __init__(self, table: Table, ttl: timedelta) -> None:
        self.table = table
        self.ttl = ttl

    def get_many(self, keys: Iterable[str], now: datetime) -> dict[str, CachedEmbedding]:
        items = self.table.batch_get((cache_pk(k) for k in keys), "cached results", consistent=False)
        return dict(found for item in items if (found := live_entry(item, now)) is not None)

    def put_many(self, entries: Mapping[str, CachedEmbedding], now: datetime) -> None:
        """Write entries (overwriting: the same key always holds the same value), 25 per request, retrying
        unprocessed ones a few rounds. TransientError/DependencyError when some could not be written."""
        expires_at = int((now + self.ttl).timestamp())
        requests = [
            {
                "PutRequest": {
                    "Item": to_attrs(
                        {
                            "pk": cache_pk(key),
                            "kind": "cache",
                            "model": entry.model,
                            "vector": entry.vector,
                            "truncated": entry.truncated,
                            "expires_at": expires_at,
                        }
                    )
                }
            }
            for key, entry in entries.items()
        ]
        for start in range(0, len(requests), _BATCH_WRITE_LIMIT):
            pending: Any = {self.table.name: requests[start : start + _BATCH_WRITE_LIMIT]}
            for attempt in range(_WRITE_ROUNDS):
                try:
                    response = self.table.client.batch_write_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc, "could not write cached results") from exc
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)  # throttled: back off before the unprocessed rest
            if pending:
                raise TransientError("DynamoDB left cache writes unprocessed", reason="unprocessed items")


@cached_factory
def result_cache() -> ResultCache:
    settings = get_settings()
    return ResultCache(Table(settings.result_cache_table_name), timedelta(hours=settings.result_cache_ttl_hours))
