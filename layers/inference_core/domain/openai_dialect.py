"""OpenAI's dialect in our terms: the model's names, the embeddings request, the ids of files and batches, the
request lines of a batch file and the lines of a batch's output and error files.

A batch is a job (`JobApi.OPENAI`): its lines are parsed here into job lines, run through the same chunks, gate,
cache and counters, and its result lines are written in OpenAI's shape when the job is assembled.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from inference_core.domain import token_ids
from inference_core.domain.inputs import MAX_INPUT_CHARS, MAX_INPUTS, EmbeddingParameters
from inference_core.domain.jobs import MAX_LINE_BYTES, JobLine, LineError, ParsedLine, json_line
from inference_core.domain.predictions import ErrorInfo

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


class EmbeddingsRequest(BaseModel):
    """The body of POST /v1/embeddings, and of every line of an embeddings batch."""

    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]],
        Field(
            description=f"A text, texts, or `cl100k_base` token ids (one list per text), at most "
            f"{MAX_REQUEST_INPUTS} items."
        ),
    ]
    model: StrictStr = Field(description=f"`{MODEL_ID}` (or `sentence-transformers/{MODEL_ID}`).")
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None, description="`float` (the default) or `base64` of little-endian float32 (the SDK's default)."
    )
    dimensions: StrictInt | None = Field(default=None, description=f"Only {DIMENSIONS}, the model's.")
    user: StrictStr | None = Field(default=None, max_length=256, description="Accepted and not used.")

    def texts(self) -> list[str]:
        """The texts, token ids decoded; InvalidRequest when they are empty or not cl100k_base ids."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if not value:
            raise InvalidRequest("input must not be empty", "input")
        if all(isinstance(item, int) for item in value):
            return [_decoded(value)]  # type: ignore[arg-type]
        if all(isinstance(item, str) for item in value):
            return list(value)  # type: ignore[arg-type]
        return [_decoded(item) for item in value]  # type: ignore[arg-type]

    @property
    def format(self) -> str:
        return self.encoding_format or "float"

    def checked_texts(self, max_inputs: int = MAX_REQUEST_INPUTS) -> list[str]:
        """The texts once the model, the dimensions and every text are acceptable."""
        if not is_known_model(self.model):
            raise unknown_model(self.model)
        texts = self.texts()
        if not 1 <= len(texts) <= max_inputs:
            raise InvalidRequest(f"input must hold 1 to {max_inputs} items", "input")
        for index, text in enumerate(texts):
            if not text.strip():
                raise InvalidRequest(f"input[{index}] is empty", "input")
            if len(text) > MAX_INPUT_CHARS:
                raise InvalidRequest(f"input[{index}] is longer than {MAX_INPUT_CHARS} characters", "input")
        if self.dimensions is not None and self.dimensions != DIMENSIONS:
            raise InvalidRequest(
                f"dimensions must be {DIMENSIONS}: {MODEL_ID} is not trained to be shortened (Matryoshka), so fewer "
                "dimensions would not keep its meaning",
                "dimensions",
            )
        return texts


def _decoded(ids: list[int]) -> str:
    try:
        return token_ids.decode(ids)
    except token_ids.InvalidTokenIds as exc:
        raise InvalidRequest(f"input: {exc}", "input") from exc


def first_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """OpenAI names the first field at fault."""
    first = exc.errors()[0]
    fields = [str(part) for part in first["loc"]]
    where = ".".join([prefix, *fields] if prefix else fields)
    return InvalidRequest(f"{where}: {first['msg']}" if where else str(first["msg"]), fields[0] if fields else None)


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


class BatchRequestLine(BaseModel):
    """One line of a batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: StrictStr = Field(min_length=1, max_length=MAX_CUSTOM_ID_CHARS)
    method: StrictStr
    url: StrictStr
    body: dict[str, Any]


def parse_request_line(raw: bytes) -> BatchRequestLine:
    """The line's envelope: a JSON object of custom_id, method, url and body."""
    if len(raw) > MAX_LINE_BYTES:
        raise InvalidRequest(f"the line is longer than {MAX_LINE_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the line is not UTF-8 (byte {exc.start})") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("the line is not a JSON document") from exc
    if not isinstance(document, dict):
        raise InvalidRequest("each line must be a JSON object")
    try:
        return BatchRequestLine.model_validate(document)
    except ValidationError as exc:
        raise first_error(exc) from exc


def check_target(line: BatchRequestLine) -> None:
    """A POST to the batch's endpoint, the only request a batch runs."""
    if line.method != "POST":
        raise InvalidRequest(f"method must be POST, not {line.method[:20]!r}", "method")
    if line.url != BATCH_ENDPOINT:
        raise InvalidRequest(f"url must be {BATCH_ENDPOINT} (the only batch endpoint), not {line.url[:100]!r}", "url")


def job_line(request: BatchRequestLine) -> JobLine:
    """The job line a request line runs as; InvalidRequest when its body is not a valid embeddings request."""
    try:
        body = EmbeddingsRequest.model_validate(request.body)
    except ValidationError as exc:
        raise first_error(exc, "body") from exc
    texts = body.checked_texts(max_inputs=MAX_INPUTS)  # a line is at most one prediction's worth
    parameters = EmbeddingParameters(encoding_format=body.encoding_format or "float")
    return JobLine.model_construct(custom_id=request.custom_id, inputs=texts, parameters=parameters)


def parse_batch_line(raw: bytes, number: int) -> ParsedLine:
    """One raw line of a batch's input -> the job line, or why it cannot run (kept for its error line)."""
    custom_id: str | None = None
    try:
        request = parse_request_line(raw)
        custom_id = request.custom_id
        check_target(request)
        return ParsedLine(number, line=job_line(request))
    except InvalidRequest as exc:
        return ParsedLine(number, error=LineError(number, custom_id, ErrorInfo.of(exc.code, exc.message)))


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
