"""Embedding quality and batching: parity with sentence-transformers, token-budget plans, merged invocations."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from model_server.batcher import MicroBatcher
from model_server.embedder import Embedder

TEXTS = [
    "The cat sits outside",
    "A man is playing guitar",
    "The new movie is awesome",
    "naïve café in Zürich",
    "日本語のテキストです",
    "short",
    " ".join(["a long sentence about serverless inference"] * 80),
    "Emoji 🚀 and punctuation?!",
]


def test_embeddings_match_sentence_transformers(embedder: Embedder) -> None:
    reference = SentenceTransformer(str(embedder.model_dir), device="cpu").encode(TEXTS, normalize_embeddings=True)

    ours = embedder.embed(TEXTS, max_tokens=512, max_batch=3).vectors

    cosines = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosines.min() >= 0.9999


def test_related_sentences_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    cat, kitten, guitar = embedder.embed(
        ["A cat sleeps on the sofa", "A kitten naps on the couch", "Stock prices fell"]
    ).vectors

    assert float(cat @ kitten) > float(cat @ guitar) + 0.3


def test_batches_respect_the_token_budget_and_pad_only_to_their_longest(embedder: Embedder) -> None:
    lengths = [random.Random(7).randint(3, 256) for _ in range(300)]

    plan = embedder.plan_batches(lengths, max_tokens=2048, max_batch=64)

    assert sorted(i for batch in plan for i in batch) == list(range(300))
    for batch in plan:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 2048


def test_results_do_not_depend_on_how_texts_are_batched(embedder: Embedder) -> None:
    together = embedder.embed(TEXTS, max_tokens=100_000, max_batch=128).vectors
    alone = np.stack([embedder.embed([t]).vectors[0] for t in TEXTS])

    assert np.allclose(together, alone, atol=1e-5)


def test_concurrent_invocations_share_model_calls_and_each_gets_its_own_rows(embedder: Embedder) -> None:
    requests = [[f"request {r} text {i}" for i in range(r % 3 + 1)] for r in range(12)]

    async def run() -> tuple[list, MicroBatcher]:
        batcher = MicroBatcher(embedder, max_tokens=8192, max_batch=128, merge_window_ms=5, max_texts=8192)
        results = await asyncio.gather(*(batcher.embed(texts) for texts in requests))
        await batcher.stop()
        return results, batcher

    results, batcher = asyncio.run(run())

    assert batcher.stats.jobs == 12
    assert batcher.stats.model_calls < 12
    for texts, result in zip(requests, results, strict=True):
        expected = embedder.embed(texts).vectors
        assert result.vectors.shape == expected.shape
        assert np.allclose(result.vectors, expected, atol=1e-5)


def test_a_failing_model_call_reaches_every_merged_caller(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(embedder, "embed", broken)

    async def run() -> list:
        batcher = MicroBatcher(embedder, max_tokens=8192, max_batch=128, merge_window_ms=5, max_texts=8192)
        outcome = await asyncio.gather(batcher.embed(["a"]), batcher.embed(["b"]), return_exceptions=True)
        await batcher.stop()
        return outcome

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_normalize_false_returns_the_pooled_vectors_whose_l2_form_is_the_default(embedder: Embedder) -> None:
    assert embedder.pooling.normalize  # all-MiniLM-L6-v2's modules.json ends with a Normalize module

    default = embedder.embed(TEXTS).vectors
    normalised = embedder.embed(TEXTS, normalize=True).vectors
    raw = embedder.embed(TEXTS, normalize=False).vectors

    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.abs(norms - 1.0) > 1e-2)
    assert np.allclose(raw / norms[:, None], normalised, atol=1e-5)
    assert np.allclose(default, normalised, atol=1e-6)


def test_per_text_normalize_flags_apply_row_by_row_within_shared_batches(embedder: Embedder) -> None:
    flags = [i % 2 == 0 for i in range(len(TEXTS))]
    normalised = embedder.embed(TEXTS, normalize=True).vectors
    raw = embedder.embed(TEXTS, normalize=False).vectors

    mixed = embedder.embed(TEXTS, max_tokens=100_000, max_batch=128, normalize=flags).vectors

    expected = np.where(np.array(flags)[:, None], normalised, raw)
    assert np.allclose(mixed, expected, atol=1e-5)


def test_normalize_flags_must_match_the_texts(embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="2 normalize flags for 3 texts"):
        embedder.embed(["a", "b", "c"], normalize=[True, False])


def test_invocations_with_different_normalize_flags_still_share_model_calls(embedder: Embedder) -> None:
    requests = [([f"request {r} text {i}" for i in range(r % 3 + 1)], [None, True, False][r % 3]) for r in range(12)]

    async def run() -> tuple[list, MicroBatcher]:
        batcher = MicroBatcher(embedder, max_tokens=8192, max_batch=128, merge_window_ms=5, max_texts=8192)
        results = await asyncio.gather(*(batcher.embed(texts, normalize) for texts, normalize in requests))
        await batcher.stop()
        return results, batcher

    results, batcher = asyncio.run(run())

    assert batcher.stats.jobs == 12
    assert batcher.stats.model_calls < 12
    for (texts, normalize), result in zip(requests, results, strict=True):
        expected = embedder.embed(texts, normalize=normalize).vectors
        assert np.allclose(result.vectors, expected, atol=1e-5)
        norms = np.linalg.norm(result.vectors, axis=1)
        assert np.allclose(norms, 1.0, atol=1e-5) == (normalize is not False)


def test_interactive_work_runs_before_the_rest_of_a_bulk_invocation(embedder: Embedder) -> None:
    bulk_texts = [f"bulk text {i}" for i in range(40)]
    order: list[str] = []

    async def run() -> tuple[np.ndarray, np.ndarray]:
        batcher = MicroBatcher(
            embedder, max_tokens=8192, max_batch=128, merge_window_ms=0, max_texts=8192, bulk_slice=8
        )

        async def bulk() -> np.ndarray:
            result = await batcher.embed(bulk_texts, bulk=True)
            order.append("bulk")
            return result.vectors

        async def interactive() -> np.ndarray:
            await asyncio.sleep(0)  # arrives after the bulk invocation is queued
            result = await batcher.embed(["an interactive request"])
            order.append("interactive")
            return result.vectors

        bulk_vectors, interactive_vectors = await asyncio.gather(bulk(), interactive())
        await batcher.stop()
        return bulk_vectors, interactive_vectors

    bulk_vectors, interactive_vectors = asyncio.run(run())

    assert order == ["interactive", "bulk"]
    assert np.allclose(bulk_vectors, embedder.embed(bulk_texts).vectors, atol=1e-5)  # slices reassembled in order
    assert np.allclose(interactive_vectors, embedder.embed(["an interactive request"]).vectors, atol=1e-5)


def test_bulk_invocations_take_turns_slice_by_slice(embedder: Embedder) -> None:
    finished: list[str] = []

    async def run() -> None:
        batcher = MicroBatcher(
            embedder, max_tokens=8192, max_batch=128, merge_window_ms=0, max_texts=8192, bulk_slice=4
        )

        async def job(name: str, count: int) -> None:
            await batcher.embed([f"{name} {i}" for i in range(count)], bulk=True)
            finished.append(name)

        await asyncio.gather(job("large", 64), job("small", 4))
        await batcher.stop()

    asyncio.run(run())

    assert finished == ["small", "large"]  # the small one did not wait for all 16 slices of the large one
