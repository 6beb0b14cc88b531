"""One line of a native job's input file, validated: what `POST /v1/jobs` accepts per line.

Checked by hand rather than with pydantic, like every document a consumer reads (see `domain.documents`): the jobs
function parses lines on every intake."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from inference_core.domain.inputs import ENCODINGS, PARAMETER_NAMES, checked_texts
from inference_core.domain.jobs import MAX_CUSTOM_ID_CHARS, MAX_LINE_BYTES, LineError
from inference_core.domain.predictions import ErrorInfo

_FIELDS = ("custom_id", "inputs", "parameters")


@dataclass(frozen=True)
class JobLine:
    """One line of a job's input file, once valid: its texts, and the parameters it set (and only those)."""

    custom_id: str
    texts: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)

    def model_parameters(self) -> dict[str, Any]:
        return dict(self.parameters)


class _Refused(ValueError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


def _custom_id(document: dict[str, Any]) -> str:
    if "custom_id" not in document:
        raise _Refused("custom_id", "field required")
    value = document["custom_id"]
    if not isinstance(value, str):
        raise _Refused("custom_id", "must be a string")
    if not 0 < len(value) <= MAX_CUSTOM_ID_CHARS:
        raise _Refused("custom_id", f"must hold 1 to {MAX_CUSTOM_ID_CHARS} characters")
    return value


def _texts(document: dict[str, Any]) -> list[str]:
    if "inputs" not in document:
        raise _Refused("inputs", "field required")
    value = document["inputs"]
    if not isinstance(value, str) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise _Refused("inputs", "must be a string or a list of strings")
    try:
        return checked_texts(value)
    except ValueError as exc:
        raise _Refused("inputs", str(exc)) from exc


def _parameters(document: dict[str, Any]) -> dict[str, Any]:
    """What the HTTP API's EmbeddingParameters accepts: `normalize` and `cache` booleans, `encoding_format`."""
    value = document.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Refused("parameters", "must be an object")
    for name, setting in value.items():
        if name not in PARAMETER_NAMES:
            raise _Refused(f"parameters.{name[:64]}", f"not a parameter (one of {', '.join(PARAMETER_NAMES)})")
        if name == "encoding_format":
            if setting not in ENCODINGS:
                raise _Refused("parameters.encoding_format", "must be 'float' or 'base64'")
        elif not isinstance(setting, bool):
            raise _Refused(f"parameters.{name}", "must be true or false")
    return dict(value)


def _job_line(document: dict[str, Any]) -> JobLine:
    line = JobLine(_custom_id(document), _texts(document), _parameters(document))
    for name in document:
        if name not in _FIELDS:
            raise _Refused(name[:64], f"not a field of a job line (one of {', '.join(_FIELDS)})")
    return line


@dataclass(frozen=True)
class ParsedLine:
    number: int
    line: JobLine | None = None
    error: LineError | None = None


def parse_line(raw: bytes, number: int) -> ParsedLine:
    """One raw line of the file (without its newline) -> the line, or why it cannot run."""

    def refused(code: str, message: str, custom_id: str | None = None) -> ParsedLine:
        return ParsedLine(number, error=LineError(number, custom_id, ErrorInfo.of(code, message)))

    if len(raw) > MAX_LINE_BYTES:
        return refused("line_too_long", f"the line is longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return refused("invalid_utf8", f"the line is not UTF-8 (byte {exc.start})")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return refused("invalid_json", "the line is not a JSON document")
    if not isinstance(document, dict):
        return refused("not_an_object", "each line must be a JSON object")
    raw_id = document.get("custom_id")
    custom_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_CUSTOM_ID_CHARS else None
    if _has_lone_surrogate(document):
        return refused("invalid_text", "the line holds a lone surrogate (not valid Unicode text)", custom_id)
    try:
        return ParsedLine(number, line=_job_line(document))
    except _Refused as exc:
        return refused("invalid_line", str(exc), custom_id)


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
