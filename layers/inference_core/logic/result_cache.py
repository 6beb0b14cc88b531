"""The result cache as the pipeline uses it: keys for a request, lookups at submit, write-back, and its metrics.

Looked up per batch (the dispatcher, a bulk chunk at launch), or at submit for a caller that waits; written back
by whoever receives the model's output. The cache only ever saves work: a failed lookup or write-back is logged and
the request goes on as if nothing was cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from inference_core.dal.result_cache import result_cache
from inference_core.domain.result_cache import CachedEmbedding, key_scope, line_keys
from inference_core.errors import DependencyError
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings


def keys_for(tenant_id: str, parameters: Mapping[str, Any], texts: Sequence[str]) -> list[str] | None:
    """One cache key per text, or None when the cache is off or the request opted out."""
    settings = get_settings()
    scope = key_scope(settings.result_cache_scope, tenant_id)
    return line_keys(scope, settings.model_revision, parameters, texts)


def lookup(keys: Sequence[str], now: datetime) -> dict[str, CachedEmbedding]:
    """The live entries of these keys; nothing when the cache cannot be read."""
    try:
        return result_cache().get_many(keys, now)
    except DependencyError as exc:
        lookup_failed(exc)
        return {}


def lookup_failed(exc: DependencyError) -> None:
    logger.warning("result cache lookup failed", reason=exc.reason)
    metrics.add_metric(name="CacheLookupFailures", unit=MetricUnit.Count, value=1)


def record_lookup(looked_up: int, hits: int) -> None:
    """Hit ratio, inputs served from the cache, and endpoint inputs saved (the same count: every hit is an input
    the endpoint does not see). Counted per input, a text repeated in a request counting each time."""
    if not looked_up:
        return
    metrics.add_metric(name="CacheLookups", unit=MetricUnit.Count, value=looked_up)
    metrics.add_metric(name="InputsServedFromCache", unit=MetricUnit.Count, value=hits)
    metrics.add_metric(name="EndpointInputsSaved", unit=MetricUnit.Count, value=hits)
    metrics.add_metric(name="CacheHitRatio", unit=MetricUnit.Percent, value=100.0 * hits / looked_up)


_GATHER_AT_MOST = 1_000
# Inside `gathered_write_back()`: the entries waiting to be written when the block ends.
_gathered: ContextVar[dict[str, CachedEmbedding] | None] = ContextVar("gathered_write_back", default=None)


@contextmanager
def gathered_write_back(now: Callable[[], datetime]) -> Iterator[None]:
    """Write-backs inside the block are written together when it ends: a function that finishes several batches
    in one invocation fills each BatchWriteItem (25 entries) instead of sending one per batch."""
    gathered: dict[str, CachedEmbedding] = {}
    token = _gathered.set(gathered)
    try:
        yield
    finally:
        _gathered.reset(token)
        write_back(gathered, now())


def write_back(entries: Mapping[str, CachedEmbedding], now: datetime, at_once: bool = False) -> None:
    """Store fresh results (or gather them, inside `gathered_write_back`, unless `at_once`: what comes next needs
    them); a failure costs only future hits."""
    if not entries:
        return
    gathered = _gathered.get()
    if gathered is not None and not at_once:
        gathered.update(entries)
        if len(gathered) < _GATHER_AT_MOST:
            return
        entries = dict(gathered)  # enough for full requests: write them now, memory stays bounded
        gathered.clear()
    try:
        result_cache().put_many(entries, now)
    except DependencyError as exc:
        logger.warning("result cache write-back failed", reason=exc.reason, entries=len(entries))
        metrics.add_metric(name="CacheWriteFailures", unit=MetricUnit.Count, value=len(entries))
        return
    metrics.add_metric(name="CacheEntriesWritten", unit=MetricUnit.Count, value=len(entries))
