"""Result cache keys and values: what changes a key (and nothing else), and exact float32 round trips."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from inference_core.domain.result_cache import (
    CachedEmbedding,
    cache_key,
    fresh_entries,
    is_complete,
    key_scope,
    line_keys,
    merge,
    model_parameters,
    partial_output,
)

BASE = ("tenant:acme", "image|s3://bucket/models/abc/model.tar.gz|1", {}, "a text")


def key(**changes: object) -> str:
    scope, revision, parameters, text = BASE
    return cache_key(
        str(changes.get("scope", scope)),
        str(changes.get("revision", revision)),
        changes.get("parameters", parameters),  # type: ignore[arg-type]
        str(changes.get("text", text)),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"revision": "image|s3://bucket/models/def/model.tar.gz|1"},
        {"revision": "image|s3://bucket/models/abc/model.tar.gz|2"},
        {"revision": "other-image|s3://bucket/models/abc/model.tar.gz|1"},
        {"parameters": {"normalize": False}},
        {"parameters": {"normalize": True}},  # left out, the model's own default applies (its modules.json)
        {"text": "a text "},
        {"text": "A text"},
        {"text": "a\u00a0text"},
        {"scope": "tenant:other"},
        {"scope": "shared"},
    ],
)
def test_what_changes_the_embedding_or_its_owner_changes_the_key(change: dict[str, object]) -> None:
    assert key(**change) != key()


@pytest.mark.parametrize(
    "parameters",
    [
        {"encoding_format": "base64"},  # applied when the output is read
        {"encoding_format": "float"},
        {"cache": True},
    ],
)
def test_nothing_else_changes_the_key(parameters: dict[str, object]) -> None:
    assert key(parameters=parameters) == key()


def test_parts_cannot_run_into_each_other() -> None:
    assert cache_key("tenant:a", "rev", {}, "bc") != cache_key("tenant:ab", "rev", {}, "c")
    assert cache_key("s", "rev|x", {}, "t") != cache_key("s", "rev", {}, "|xt")


def test_keys_are_fixed_length_hex_that_names_no_tenant_or_text() -> None:
    value = key()
    assert len(value) == 64
    assert int(value, 16) >= 0
    assert "acme" not in value


def test_a_lone_surrogate_still_has_a_key() -> None:
    assert len(key(text="\ud800")) == 64


def test_scopes() -> None:
    assert key_scope("tenant", "acme") == "tenant:acme"
    assert key_scope("shared", "acme") == key_scope("shared", "other") == "shared"
    assert key_scope("off", "acme") is None
    with pytest.raises(ValueError):
        key_scope("everyone", "acme")


def test_line_keys_are_none_when_off_or_opted_out() -> None:
    assert line_keys(None, "rev", {}, ["a"]) is None
    assert line_keys("tenant:a", "rev", {"cache": False}, ["a"]) is None
    assert line_keys("tenant:a", "rev", {}, ["a", "b", "a"]) == [
        cache_key("tenant:a", "rev", {}, t) for t in ["a", "b", "a"]
    ]


def test_the_model_never_sees_the_cache_switch() -> None:
    assert model_parameters({"cache": False, "normalize": False}) == {"normalize": False}


def test_a_cached_vector_prints_exactly_as_the_model_printed_it() -> None:
    # The model writes its float32 values rounded to 7 decimals in float64 (model_server.server); the cache keeps
    # float32. Unit-length vectors: every value within [-1, 1].
    rng = random.Random(7)
    raw = [rng.uniform(-1, 1) for _ in range(20_000)] + [0.0, -0.0, 1e-38, 1e-45, 1.0, -1.0, 0.99999997]
    as_float32 = np.array(raw, dtype=np.float32)
    printed = json.dumps(np.round(as_float32.astype(np.float64), 7).tolist())

    entry = CachedEmbedding.of("m", json.loads(printed), False)

    assert json.dumps(entry.values()) == printed
    assert len(entry.vector) == 4 * len(raw)


def test_partial_outputs_merge_in_input_order() -> None:
    a, c = CachedEmbedding.of("m", [1.0, 0.0], False), CachedEmbedding.of("m", [3.0, 0.0], True)
    partial = partial_output([a, None, c, None])
    assert not is_complete(partial)

    merged = merge(
        partial, {"model": "m", "dimensions": 2, "embeddings": [[2.0, 0.0], [4.0, 0.0]], "truncated": [False, True]}
    )

    assert merged["embeddings"] == [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]]
    assert merged["truncated"] == [False, False, True, True]
    assert merged["dimensions"] == 2
    assert is_complete(partial_output([a, c]))


@pytest.mark.parametrize(
    "fresh",
    [
        {"embeddings": [[2.0, 0.0]], "truncated": [False]},  # one too few
        {"embeddings": [[2.0, 0.0], [4.0, 0.0], [5.0, 0.0]], "truncated": [False] * 3},  # one too many
        {"embeddings": [[2.0], [4.0]], "truncated": [False, False]},  # other dimensions
        {"embeddings": [[2.0, 0.0], "x"], "truncated": [False, False]},
        {"embeddings": [[2.0, 0.0], [4.0, 0.0]]},  # no truncated flags
    ],
)
def test_a_model_answer_that_does_not_fit_is_refused(fresh: dict[str, object]) -> None:
    partial = partial_output([CachedEmbedding.of("m", [1.0, 0.0], False), None, None])
    with pytest.raises(ValueError):
        merge(partial, {"model": "m", **fresh})


@pytest.mark.parametrize(
    "output",
    [
        {"model": "m", "embeddings": [[1.0], [2.0]], "truncated": [False]},
        {"model": "m", "embeddings": [[1.0], [float("nan")]], "truncated": [False, False]},
        {"model": "m", "embeddings": [[1.0], [True]], "truncated": [False, False]},
        {"model": "m", "embeddings": [[1.0], []], "truncated": [False, False]},
        {"model": "m", "embeddings": [[1.0], [1e300]], "truncated": [False, False]},
        {"model": "m", "embeddings": [[1.0], [2.0]], "truncated": [False, "no"]},
        {"model": 7, "embeddings": [[1.0], [2.0]], "truncated": [False, False]},
        {"embeddings": "not a list"},
    ],
)
def test_nothing_is_cached_from_an_output_the_model_does_not_promise(output: dict[str, object]) -> None:
    assert fresh_entries(["k1", "k2"], output) == {}


def test_fresh_entries_pair_keys_with_vectors_in_order() -> None:
    entries = fresh_entries(["k1", "k2"], {"model": "m", "embeddings": [[1.0], [2.0]], "truncated": [False, True]})
    assert entries["k1"].values() == [1.0]
    assert entries["k2"].values() == [2.0]
    assert entries["k2"].truncated
    assert entries["k1"].model == "m"
