"""OpenAI's dialect in our terms: the model's names, the embeddings request, the ids of files and batches, the
request lines of a batch file and the lines of a batch's output and error files.

A batch is a job (`JobApi.OPENAI`): its lines are parsed into job lines (`domain.openai_requests`, with the
embeddings request: the pydantic part, kept off the consumers that only name batches and write result lines), run
through the same chunks, gate, cache and counters, and its result lines are written in OpenAI's shape here when the
job is assembled.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from inference_core.domain.jobs import json_line

MODEL_ID = "all-MiniLM-L6-v2"
# What users may call it as well (the model's Hugging Face name); any other name is 404 model_not_found.
MODEL_ALIASES = frozenset({MODEL_ID, f"sentence-transformers/{MODEL_ID}"})
MODEL_CREATED = 1_628_553_600  # 2021-08-10, the model's release on the Hugging Face hub
MODEL_OWNER = "sentence-transformers"
DIMENSIONS = 384
MAX_REQUEST_INPUTS = 2048

BATCH_ENDPOINT = "/v1/embeddings"
COMPLETION_WINDOW = "24h"
# OpenAI's bounds for a batch file: requests per file, and embedding inputs across all of them.
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_INPUTS = 50_000
MAX_CUSTOM_ID_CHARS = 512
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512

_BATCH_ID = re.compile(r"^batch_([0-9a-f]{32})$")
_FILE_ID = re.compile(r"^file-[0-9a-f]{32}$")


class InvalidRequest(ValueError):
    """A request (or batch line) OpenAI would refuse: `code` model_not_found is a 404, anything else a 400."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def is_known_model(name: str) -> bool:
    return name in MODEL_ALIASES


def unknown_model(name: str) -> InvalidRequest:
    return InvalidRequest(f"The model '{name[:100]}' does not exist", "model", "model_not_found")


def embeddings_body(vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    """An embeddings response, as POST /v1/embeddings answers and a batch's output lines hold."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "model": MODEL_ID,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# -- ids ------------------------------------------------------------------------------------------------------------


def batch_id(job_id: str) -> str:
    return "batch_" + job_id.removeprefix("job_")


def job_id_of(batch: str) -> str | None:
    """The job behind a batch id; None for anything that is not one of ours."""
    found = _BATCH_ID.match(batch)
    return f"job_{found.group(1)}" if found else None


def is_file_id(value: str) -> bool:
    return bool(_FILE_ID.match(value))


def result_file_id(job_id: str, kind: str) -> str:
    """A batch's output or error file: derived from the job, so writing it twice makes one file."""
    return "file-" + hashlib.sha256(f"{job_id}/{kind}".encode()).hexdigest()[:32]


def batch_event(event: str, job_id: str, webhook_id: str, at: int) -> dict[str, Any]:
    """A batch's webhook event as OpenAI sends them (`client.webhooks.unwrap()` parses it)."""
    return {
        "id": "evt_" + webhook_id.removeprefix("msg_"),
        "object": "event",
        "created_at": at,
        "type": event,
        "data": {"id": batch_id(job_id)},
    }


def _line_ids(job_id: str, number: int) -> tuple[str, str]:
    digest = hashlib.sha256(f"{job_id}:{number}".encode()).hexdigest()
    return f"batch_req_{digest[:32]}", f"req_{digest[32:]}"


# -- batch files ----------------------------------------------------------------------------------------------------


# -- result lines ---------------------------------------------------------------------------------------------------

# Lines that never ran: OpenAI's error codes for them (the line has `error`, and no `response`).
_NEVER_RAN = {"cancelled": "batch_cancelled", "expired": "batch_expired"}
# Errors on our side, not in the request: answered 500.
_SERVER_ERRORS = frozenset({"inference_failed", "lost", "missing_output", "malformed_output", "cache_failed"})


def status_of(code: str) -> int:
    if code == "model_not_found":
        return 404
    return 500 if code in _SERVER_ERRORS else 400


def result_line(job_id: str, native: dict[str, Any]) -> bytes:
    """A line of a job's own output or error file (`custom_id`, `line`, `output` or `error`) -> OpenAI's line
    `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`."""
    number = int(native["line"])
    line_id, request_id = _line_ids(job_id, number)
    document: dict[str, Any] = {"id": line_id, "custom_id": native.get("custom_id"), "response": None, "error": None}
    output = native.get("output")
    if isinstance(output, dict):
        vectors = output.get("embeddings") or []
        body = embeddings_body(vectors, int(output.get("prompt_tokens", 0)))
        document["response"] = {"status_code": 200, "request_id": request_id, "body": body}
        return json_line(document)
    error = native.get("error") or {}
    code, message = str(error.get("code", "error")), str(error.get("message", ""))
    if code in _NEVER_RAN:
        document["error"] = {"code": _NEVER_RAN[code], "message": message}
        return json_line(document)
    status = status_of(code)
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    document["response"] = {"status_code": status, "request_id": request_id, "body": body}
    return json_line(document)
