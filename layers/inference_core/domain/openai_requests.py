"""OpenAI's requests, validated: the body of POST /v1/embeddings and the request lines of a batch file.

Apart from `domain.openai_dialect` because these are pydantic models: only the API and job intake parse them."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from inference_core.domain import token_ids
from inference_core.domain.inputs import MAX_INPUT_CHARS, MAX_INPUTS
from inference_core.domain.job_lines import JobLine, ParsedLine
from inference_core.domain.jobs import MAX_LINE_BYTES, LineError
from inference_core.domain.openai_dialect import (
    BATCH_ENDPOINT,
    DIMENSIONS,
    MAX_CUSTOM_ID_CHARS,
    MAX_REQUEST_INPUTS,
    MODEL_ID,
    InvalidRequest,
    is_known_model,
    unknown_model,
)
from inference_core.domain.predictions import ErrorInfo


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
    return JobLine(request.custom_id, texts, {"encoding_format": body.encoding_format or "float"})


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
