"""The /invocations wire format: JSON Lines in (one request per line), JSON Lines out (one answer per line)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSONLINES_TYPES = {"application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson"}
JSON_TYPES = {"application/json"}


class BodyError(ValueError):
    """The body as a whole cannot be read (wrong content type, empty); answered with 4xx."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class LineRequest:
    position: int
    id: str
    inputs: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineError:
    position: int
    id: str | None
    code: str
    message: str

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "error": {"code": self.code, "message": self.message}}, ensure_ascii=False)


def _validate(
    position: int, document: Any, max_inputs: int, max_chars: int, default_id: str | None
) -> LineRequest | LineError:
    if not isinstance(document, dict):
        return LineError(position, None, "invalid_line", "each line must be a JSON object")
    line_id = document.get("id", default_id)
    if not isinstance(line_id, str) or not line_id:
        return LineError(position, None, "invalid_line", "missing or empty 'id' (a string)")
    inputs = document.get("inputs")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return LineError(position, line_id, "invalid_input", "'inputs' must be a string or a non-empty list of strings")
    if len(texts) > max_inputs:
        return LineError(position, line_id, "too_many_inputs", f"at most {max_inputs} inputs per line")
    for index, text in enumerate(texts):
        if not text.strip():
            return LineError(position, line_id, "empty_input", f"inputs[{index}] is empty")
        if len(text) > max_chars:
            return LineError(
                position, line_id, "input_too_long", f"inputs[{index}] is longer than {max_chars} characters"
            )
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        return LineError(position, line_id, "invalid_parameters", "'parameters' must be an object")
    return LineRequest(position, line_id, texts, parameters)


def parse_body(body: bytes, content_type: str, max_inputs: int, max_chars: int) -> list[LineRequest | LineError]:
    """One entry per non-blank line (JSON Lines), or per request (a JSON object or array)."""
    media_type = content_type.split(";")[0].strip().lower() or "application/jsonlines"
    if media_type not in JSONLINES_TYPES | JSON_TYPES:
        raise BodyError(
            415, "unsupported_media_type", f"send application/jsonlines or application/json, not {media_type}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(400, "invalid_encoding", "the body is not UTF-8") from exc
    if not text.strip():
        raise BodyError(400, "empty_body", "the body is empty: send one JSON request per line")

    if media_type in JSON_TYPES:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BodyError(400, "malformed_json", "the body is not valid JSON") from exc
        documents = document if isinstance(document, list) else [document]
        return [_validate(i, d, max_inputs, max_chars, default_id=str(i)) for i, d in enumerate(documents)]

    entries: list[LineRequest | LineError] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue  # blank lines (a trailing newline, say) are not requests
        position = len(entries)
        try:
            document = json.loads(raw)
        except json.JSONDecodeError:
            entries.append(LineError(position, None, "malformed_json", "this line is not valid JSON"))
            continue
        entries.append(_validate(position, document, max_inputs, max_chars, default_id=None))
    return entries


def success_line(line_id: str, model: str, vectors: list[list[float]], truncated: list[bool]) -> str:
    output = {
        "model": model,
        "dimensions": len(vectors[0]) if vectors else 0,
        "embeddings": vectors,
        "truncated": truncated,
    }
    return json.dumps({"id": line_id, "output": output}, separators=(",", ":"))
