"""The /invocations wire format: JSON Lines in (one request per line), JSON Lines out (one answer per line).

Lines are separated by "\n" alone (a "\r" before it is dropped). Unicode line breaks such as U+2028, U+2029 or
U+0085 are ordinary characters inside a JSON string (encoders like pydantic's write them unescaped), so they never
end a line; the answers escape them, so that even a reader splitting on every Unicode line break sees one answer
per line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

JSONLINES_TYPES = {"application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/x-ndjson"}
JSON_TYPES = {"application/json"}

# Whitespace as JSON defines it: str.strip() would also strip U+2028, U+0085 and the like.
JSON_WHITESPACE = " \t\r\n"
# Characters json.dumps(ensure_ascii=False) leaves raw that str.splitlines() would still break a line on.
_UNICODE_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNICODE_LINE_BREAK = re.compile("[\u0085\u2028\u2029]")

ENCODING_FORMATS = ("float", "base64")
ALLOWED_PARAMETERS = ("encoding_format", "normalize")


class BodyError(ValueError):
    """The body as a whole cannot be read (wrong content type, empty); answered with 4xx."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def dumps_line(document: Any) -> str:
    """One JSON document on one line, whatever line-break characters its strings hold."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return _UNICODE_LINE_BREAK.sub(lambda match: _UNICODE_LINE_BREAKS[match.group()], text)


@dataclass
class LineRequest:
    position: int
    id: str
    inputs: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    # None: as the model's modules.json says (L2 for all-MiniLM-L6-v2); False: the pooled vectors as they are.
    normalize: bool | None = None


@dataclass
class LineError:
    position: int
    id: str | None
    code: str
    message: str

    def to_json(self) -> str:
        return dumps_line({"id": self.id, "error": {"code": self.code, "message": self.message}})


def _check_parameters(parameters: dict[str, Any]) -> str | None:
    """Why these parameters cannot be served, or None. null stands for an absent parameter."""
    unknown = sorted(name for name in parameters if name not in ALLOWED_PARAMETERS)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        allowed = ", ".join(repr(name) for name in ALLOWED_PARAMETERS)
        return f"unknown parameter {names} (allowed: {allowed})"
    normalize = parameters.get("normalize")
    if normalize is not None and not isinstance(normalize, bool):
        return "parameter 'normalize' must be a boolean"
    encoding_format = parameters.get("encoding_format")
    if encoding_format is not None and encoding_format not in ENCODING_FORMATS:
        return "parameter 'encoding_format' must be 'float' or 'base64'"
    return None


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
    parameters = document.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        return LineError(position, line_id, "invalid_parameters", "'parameters' must be an object")
    problem = _check_parameters(parameters)
    if problem:
        return LineError(position, line_id, "invalid_parameters", problem)
    return LineRequest(position, line_id, texts, parameters, normalize=parameters.get("normalize"))


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
    if not text.strip(JSON_WHITESPACE):
        raise BodyError(400, "empty_body", "the body is empty: send one JSON request per line")

    if media_type in JSON_TYPES:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BodyError(400, "malformed_json", "the body is not valid JSON") from exc
        documents = document if isinstance(document, list) else [document]
        return [_validate(i, d, max_inputs, max_chars, default_id=str(i)) for i, d in enumerate(documents)]

    entries: list[LineRequest | LineError] = []
    for raw in text.split("\n"):
        raw = raw.removesuffix("\r")
        if not raw.strip(JSON_WHITESPACE):
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
    # ASCII only (ensure_ascii), so one line whatever a reader counts as a line break.
    return json.dumps({"id": line_id, "output": output}, separators=(",", ":"))
