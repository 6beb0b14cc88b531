"""Splits any number of texts into request bodies within the API's limits, measuring each body as it is sent.

A body is encoded here, once, compactly (`ensure_ascii=False`, no spaces), and sent as those bytes: the size that
is checked is the size that goes on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from inference_client.errors import InvalidInputError

MAX_INPUTS = 256
MAX_INPUT_CHARS = 8_192
MAX_BODY_BYTES = 200 * 1024


def encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def check_text(text: object, index: int, name: str | None = None) -> str:
    """The text if the API accepts it as an input, else InvalidInputError naming it (`name`, or "input <index>")."""
    name = name or f"input {index}"
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} is a {type(text).__name__}, not a string", index)
    if not text.strip():
        raise InvalidInputError(f"{name} is empty or only whitespace", index)
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidInputError(
            f"{name} is {len(text):,} characters, more than the API's {MAX_INPUT_CHARS:,} (split it)", index
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{name} is not valid Unicode (lone surrogate)", index) from exc
    return text


@dataclass(frozen=True)
class Chunk:
    """Inputs [start, start + len(texts)) and the exact JSON body that submits them."""

    start: int
    texts: list[str]
    body: bytes


def iter_chunks(
    texts: Iterable[str],
    envelope: Mapping[str, Any] | None = None,
    *,
    max_inputs: int = MAX_INPUTS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Iterator[Chunk]:
    """Consecutive chunks of at most `max_inputs` texts whose body `{"inputs": [...], **envelope}` is under
    `max_body_bytes` bytes. Reads `texts` lazily; checks each text as it comes."""
    if max_inputs < 1:
        raise ValueError("max_inputs must be at least 1")
    body_template = {"inputs": [], **(envelope or {})}
    empty = len(encode_json(body_template))  # the envelope with "inputs": []
    batch: list[str] = []
    size = empty
    start = 0
    for index, text in enumerate(texts):
        item = len(encode_json(check_text(text, index)))
        if batch and (len(batch) >= max_inputs or size + 1 + item >= max_body_bytes):
            yield _chunk(start, batch, body_template, size)
            start, batch, size = index, [], empty
        size += item + (1 if batch else 0)  # a comma between items
        if size >= max_body_bytes:
            raise InvalidInputError(f"input {index} alone makes a request body over {max_body_bytes:,} bytes", index)
        batch.append(text)
    if batch:
        yield _chunk(start, batch, body_template, size)


def _chunk(start: int, batch: list[str], template: Mapping[str, Any], size: int) -> Chunk:
    body = encode_json({**template, "inputs": batch})
    if len(body) != size:  # the arithmetic above is exact; this guards it
        raise AssertionError(f"body size {len(body)} != computed {size}")
    return Chunk(start, batch, body)
