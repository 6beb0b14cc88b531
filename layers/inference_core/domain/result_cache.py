"""The result cache's keys and values: one entry per input text, addressed by exactly what decides its embedding.

A key is SHA-256 over (scope, model revision, the parameters that change the vector, the exact text), each part
length-prefixed so no two different tuples hash the same bytes. The scope is the tenant unless the template shares
the cache across tenants, so one tenant cannot learn by timing what another embedded. `encoding_format` is not in
the key: it is applied when an output is read, to cached and fresh vectors alike.

Values keep the vector as little-endian float32. The model writes each value rounded to 7 decimals (at most 10
characters of JSON); the float32 kept here is within half a float32 step of that number, which for the unit-length
vectors the model returns is under half of 1e-7, so rounding it to 7 decimals again gives back the very number the
fresh output printed.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from inference_core.domain import documents as doc

T = TypeVar("T")

# `parameters.cache: false` opts one request (or one bulk line) out: no lookup, no write-back.
CACHE_PARAMETER = "cache"


class CacheScope(StrEnum):
    """Template parameter ResultCacheScope."""

    TENANT = "tenant"  # each tenant has its own entries (the default)
    SHARED = "shared"  # one entry per text for every tenant: more hits, but a tenant can time another's texts
    OFF = "off"


def key_scope(setting: str, tenant_id: str) -> str | None:
    """What partitions the cache for this tenant, or None when the cache is off."""
    scope = CacheScope(setting)
    if scope is CacheScope.OFF:
        return None
    return "shared" if scope is CacheScope.SHARED else f"tenant:{tenant_id}"


def caching_requested(parameters: Mapping[str, Any]) -> bool:
    return parameters.get(CACHE_PARAMETER, True) is not False


def model_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters the model container gets: the cache switch is ours, not the model's."""
    return {name: value for name, value in parameters.items() if name != CACHE_PARAMETER}


def cache_key(scope: str, model_revision: str, parameters: Mapping[str, Any], text: str) -> str:
    # `normalize` is the one parameter that changes the vector. Left out, the model applies its own default
    # (modules.json), which the key cannot know: a third value, never shared with an explicit true or false.
    setting = parameters.get("normalize")
    normalize = "normalize" if setting is True else "raw" if setting is False else "model-default"
    digest = hashlib.sha256()
    for part in (scope, model_revision, normalize, text):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def line_keys(
    scope: str | None, model_revision: str, parameters: Mapping[str, Any], texts: Sequence[str]
) -> list[str] | None:
    """One key per text of a request (or bulk line), or None when it does not use the cache."""
    if scope is None or not caching_requested(parameters):
        return None
    return [cache_key(scope, model_revision, parameters, text) for text in texts]


@dataclass(frozen=True)
class CachedEmbedding:
    model: str
    vector: bytes  # little-endian float32
    truncated: bool

    @classmethod
    def of(cls, model: str, values: Sequence[float], truncated: bool) -> CachedEmbedding:
        return cls(model, struct.pack(f"<{len(values)}f", *values), truncated)

    def values(self) -> list[float]:
        return [round(value, 7) for value in struct.unpack(f"<{len(self.vector) // 4}f", self.vector)]


def missing(items: Sequence[T], found: Sequence[object | None]) -> list[T]:
    """The items (texts, keys) at the positions the cache left empty, in order."""
    return [item for item, entry in zip(items, found, strict=True) if entry is None]


def partial_output(found: Sequence[CachedEmbedding | None]) -> dict[str, Any]:
    """An output in the model's shape with the cached embeddings in place and `None` where the model must fill in.
    With no `None` left it is a finished output."""
    model = next(entry.model for entry in found if entry is not None)
    embeddings = [entry.values() if entry else None for entry in found]
    dimensions = next((len(vector) for vector in embeddings if vector is not None), 0)
    return {
        "model": model,
        "dimensions": dimensions,
        "embeddings": embeddings,
        "truncated": [entry.truncated if entry else None for entry in found],
    }


def result_line(line_id: str, output: Mapping[str, Any]) -> bytes:
    """One line in the shape of the model's output lines (ASCII JSON, newline-terminated)."""
    return json.dumps({"id": line_id, "output": output}, separators=(",", ":")).encode() + b"\n"


def is_complete(output: Mapping[str, Any]) -> bool:
    return all(vector is not None for vector in output["embeddings"])


def merge(partial: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the gaps of `partial`, in input order, with the model's output for exactly the missing texts.
    ValueError when the model's output does not fit the gaps."""
    embeddings, truncated = _checked(fresh)
    gaps = [i for i, vector in enumerate(partial["embeddings"]) if vector is None]
    if len(gaps) != len(embeddings):
        raise ValueError(f"the model returned {len(embeddings)} embeddings for {len(gaps)} texts")
    merged = list(partial["embeddings"])
    flags = list(partial["truncated"])
    for gap, vector, flag in zip(gaps, embeddings, truncated, strict=True):
        if partial["dimensions"] and len(vector) != partial["dimensions"]:
            raise ValueError("the model's embeddings do not match the cached ones' dimensions")
        merged[gap], flags[gap] = vector, flag
    return {**fresh, "embeddings": merged, "truncated": flags, "dimensions": len(merged[0])}


def fresh_entries(keys: Sequence[str], output: Mapping[str, Any]) -> dict[str, CachedEmbedding]:
    """Cache entries for the model's output of the texts behind `keys` (in order); nothing from an output that is
    not what the model promises (a wrong count, non-numbers, non-finite values)."""
    try:
        embeddings, truncated = _checked(output)
    except ValueError:
        return {}
    model = output.get("model")
    if len(embeddings) != len(keys) or not isinstance(model, str):
        return {}
    try:
        return {
            key: CachedEmbedding.of(model, vector, flag)
            for key, vector, flag in zip(keys, embeddings, truncated, strict=True)
        }
    except (struct.error, OverflowError):  # a value beyond float32: not what the model writes
        return {}


def _checked(output: Mapping[str, Any]) -> tuple[list[list[float]], list[bool]]:
    embeddings = output.get("embeddings")
    truncated = output.get("truncated")
    if not isinstance(embeddings, list) or not isinstance(truncated, list) or len(truncated) != len(embeddings):
        raise ValueError("the model's output has no embeddings with truncated flags")
    for vector in embeddings:
        if (
            not isinstance(vector, list)
            or not vector
            or not all(isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v) for v in vector)
        ):
            raise ValueError("an embedding is not a list of finite numbers")
    if not all(isinstance(flag, bool) for flag in truncated):
        raise ValueError("a truncated flag is not a boolean")
    return embeddings, truncated


@dataclass
class CachePlanLine:
    """What a bulk chunk's line got from the cache at launch: its keys (one per text) and, when any text hit,
    the output with gaps for the model."""

    id: str
    keys: list[str] = field(default_factory=list)
    output: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachePlanLine:
        document = doc.load_object(raw)
        return cls(
            id=doc.text(document, "id"),
            keys=doc.texts(document, "keys", default=[]),
            output=doc.optional_object(document, "output"),
        )

    def to_document(self) -> dict[str, Any]:
        """Its JSON object; no `output` key when nothing hit."""
        document: dict[str, Any] = {"id": self.id, "keys": self.keys}
        if self.output is not None:
            document["output"] = self.output
        return document

    @classmethod
    def of(cls, line_id: str, keys: Sequence[str], cached: Mapping[str, CachedEmbedding]) -> CachePlanLine:
        found = [cached.get(k) for k in keys]
        return cls(id=line_id, keys=list(keys), output=partial_output(found) if any(found) else None)

    def sent_keys(self) -> list[str]:
        """The keys of the texts the model was sent (the gaps), in order."""
        if self.output is None:
            return self.keys
        gaps = self.output.get("embeddings") or []
        if len(gaps) != len(self.keys):
            return []  # not a plan this code wrote: write nothing back
        return missing(self.keys, gaps)
