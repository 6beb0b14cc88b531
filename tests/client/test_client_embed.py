"""`embed`: chunking within the API's limits, input order whatever order requests finish in, waiting, outputs."""

from __future__ import annotations

import asyncio
import json

import pytest
from inference_client import InvalidInputError, PredictionError, PredictionStatus, WaitTimeoutError
from inference_client.chunking import MAX_BODY_BYTES, MAX_INPUTS, encode_json, iter_chunks

from tests.client.conftest import vector

ENVELOPE = {"parameters": {"normalize": True, "encoding_format": "base64"}}


def test_chunks_hold_at_most_256_inputs() -> None:
    chunks = list(iter_chunks([f"t{i}" for i in range(600)], ENVELOPE))
    assert [len(c.texts) for c in chunks] == [256, 256, 88]
    assert [c.start for c in chunks] == [0, 256, 512]


@pytest.mark.parametrize(
    "make_text",
    [
        lambda i: "x" * 1000,  # 256 of these would be ~256 KB
        lambda i: "é€😀" * 2730,  # multi-byte UTF-8, 8,190 characters
        lambda i: '"\\\n\t\x01' * 1638,  # characters JSON escapes (up to 6 bytes each)
        lambda i: f"{i} " + "word " * (i % 300),  # mixed sizes
    ],
)
def test_every_body_is_under_200_kib_as_encoded_and_as_full_as_allowed(make_text) -> None:
    texts = [make_text(i) for i in range(700)]
    chunks = list(iter_chunks(texts, ENVELOPE))
    assert [t for c in chunks for t in c.texts] == texts
    for chunk, following in zip(chunks, [*chunks[1:], None], strict=True):
        assert len(chunk.body) < MAX_BODY_BYTES
        assert len(chunk.texts) <= MAX_INPUTS
        assert json.loads(chunk.body) == {"inputs": chunk.texts, **ENVELOPE}
        if following is not None and len(chunk.texts) < MAX_INPUTS:
            # greedy: the next text would not have fitted
            fuller = encode_json({"inputs": [*chunk.texts, following.texts[0]], **ENVELOPE})
            assert len(fuller) >= MAX_BODY_BYTES


def test_what_is_sent_is_what_was_measured(api, make_client) -> None:
    texts = ["x" * 1000 for _ in range(600)]
    with make_client() as client:
        client.embed(texts)
    creates = api.creates()
    assert all(len(r.content) < MAX_BODY_BYTES for r in creates)
    assert sorted(len(json.loads(r.content)["inputs"]) for r in creates) == [192, 204, 204]  # sent concurrently


@pytest.mark.parametrize(
    ("bad", "message"),
    [("   ", "only whitespace"), ("x" * 8193, "8,193 characters"), ("a\ud800b", "lone surrogate"), (3, "not a string")],
)
def test_bad_inputs_are_refused_before_anything_is_sent(api, make_client, bad, message) -> None:
    with make_client() as client, pytest.raises(InvalidInputError, match=message) as raised:
        client.embed(["fine", "also fine", bad])
    assert raised.value.index == 2
    assert api.requests == []


def test_embeddings_come_back_in_input_order_when_requests_finish_out_of_order(api, make_client) -> None:
    texts = [f"text number {i}" for i in range(1000)]
    # The first request needs many polls; the others finish with their Prefer: wait reply.
    api.polls_needed = lambda inputs: 6 if inputs[0] == texts[0] else 0
    seen: list[tuple[int, int | None]] = []
    with make_client() as client:
        result = client.embed(texts, concurrency=4, progress=lambda done, total: seen.append((done, total)))
    assert result == [vector(t) for t in texts]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (1000, 1000)
    assert len(seen) == 4


def test_async_embed_keeps_order_too(api, clock, make_async_client) -> None:
    texts = [f"text number {i}" for i in range(1000)]
    api.polls_needed = lambda inputs: 6 if inputs[0] == texts[0] else 0

    async def scenario() -> list[list[float]]:
        async with make_async_client() as client:
            return await client.embed(texts, concurrency=4)

    assert asyncio.run(scenario()) == [vector(t) for t in texts]
    first = next(pid for pid, p in api.predictions.items() if p["_inputs"][0] == texts[0])
    assert api.completed[-1] == first  # the first request really finished last


def test_it_submits_with_prefer_wait_then_polls_with_backoff(api, clock, make_client) -> None:
    api.polls_needed = lambda _inputs: 4
    with make_client() as client:
        assert client.embed(["one", "two"]) == [vector("one"), vector("two")]
    create = api.creates()[0]
    assert create.headers["prefer"] == "wait=20"
    assert json.loads(create.content)["parameters"] == {"normalize": True, "encoding_format": "base64"}
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0]  # doubling from 0.5 s, at most 5 s


def test_cache_false_asks_the_server_to_bypass_its_result_cache(api, make_client) -> None:
    with make_client() as client:
        assert client.embed(["one"], cache=False) == [vector("one")]
    create = api.creates()[0]
    assert json.loads(create.content)["parameters"] == {"normalize": True, "encoding_format": "base64", "cache": False}


def test_an_output_behind_output_url_is_read_without_the_api_key(api, make_client) -> None:
    api.large_output = lambda _inputs: True
    with make_client() as client:
        assert client.embed(["big", "output"]) == [vector("big"), vector("output")]
    # (the fake asserts that the link was read without Authorization)
    assert [r.url.host for r in api.requests] == ["api.example", "objects.example"]


def test_a_failed_prediction_fails_the_call(api, make_client) -> None:
    texts = [f"t{i}" for i in range(600)]
    api.fails = lambda inputs: inputs[0] == "t256"
    with make_client() as client, pytest.raises(PredictionError, match="inference_failed") as raised:
        client.embed(texts, concurrency=1)
    assert raised.value.prediction.status == PredictionStatus.FAILED


def test_wait_timeout(api, clock, make_client) -> None:
    api.polls_needed = lambda _inputs: 1000
    with make_client() as client, pytest.raises(WaitTimeoutError):
        client.embed(["slow"], timeout=30.0)
    assert sum(clock.sleeps) == pytest.approx(30.0)


def test_embed_batches_yields_in_order_and_reads_lazily(api, make_client) -> None:
    consumed = []

    def texts():
        for i in range(2000):
            consumed.append(i)
            yield f"t{i}"

    with make_client() as client:
        batches = client.embed_batches(texts(), concurrency=1)
        first = next(batches)
        assert first.start == 0
        assert len(first.embeddings) == 256
        assert len(consumed) < 2000  # only a bounded window was read ahead
        rest = list(batches)
    starts = [first.start] + [b.start for b in rest]
    assert starts == sorted(starts)
    assert sum(len(b.embeddings) for b in [first, *rest]) == 2000


def test_predictions_api(api, clock, make_client) -> None:
    api.polls_needed = lambda _inputs: 2
    with make_client() as client:
        created = client.predictions.create(["a", "b"], metadata={"job": "42"})
        assert created.status == PredictionStatus.QUEUED
        assert created.metadata == {"job": "42"}
        done = client.predictions.wait(created.id)
        assert done.status == PredictionStatus.SUCCEEDED
        assert done.output is not None
        assert done.output.embeddings == [vector("a"), vector("b")]
        assert done.completed_at is not None
        assert done.completed_at.tzinfo is not None
        other = client.predictions.create("c", wait=20)
        page = client.predictions.list(limit=1)
        assert [p.id for p in page.data] == [other.id]
        assert page.next_cursor is not None
        assert [p.id for p in client.predictions.iterate(page_size=1)] == [other.id, created.id]
        assert api.api_requests("GET", "/v1/predictions")[0].url.params["limit"] == "1"
