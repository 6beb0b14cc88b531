"""Embeddings answered synchronously, as OpenAI's `POST /v1/embeddings` does, over the prediction pipeline.

One request's texts become as many predictions as the limits need (MAX_INPUTS texts and a bounded size each, so
each fits one SQS message), all submitted at once and waited on together; the answer keeps input order. Each part
carries an idempotency key derived from its content, so the SDK's retry of a request that ran past the wait (503)
finds the same predictions instead of computing them again; a part that failed gives its key back, so that a
later request computes it afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inference_core.dal.idempotency import idempotency_store
from inference_core.domain.inputs import MAX_INPUTS, estimated_tokens
from inference_core.domain.limits import Lane
from inference_core.domain.openai_dialect import InvalidRequest
from inference_core.domain.openai_requests import EmbeddingsRequest
from inference_core.domain.predictions import NewPrediction, Prediction, PredictionStatus
from inference_core.errors import (
    DomainError,
    NotFoundError,
    PermanentDependencyError,
    TransientError,
    ValidationFailedError,
)
from inference_core.logic import predictions
from inference_core.observability import logger

# Float JSON of more than this many 384-dimension vectors passes Lambda's 6 MB response limit (base64 does not).
MAX_FLOAT_INPUTS = 1024
_PART_TEXT_BYTES = 150_000  # of text per prediction: its queue message stays under SQS's 256 KiB


class ModelNotFound(NotFoundError):
    code = "model_not_found"


class NotFinished(TransientError):
    code = "not_finished"


@dataclass(frozen=True)
class Embeddings:
    vectors: list[Any]  # list[float] each, or base64 strings
    prompt_tokens: int


def invalid(exc: InvalidRequest) -> DomainError:
    """The domain's refusal as the error the API maps: 404 model_not_found, else 400."""
    if exc.code == "model_not_found":
        return ModelNotFound(exc.message, {"param": exc.param})
    return ValidationFailedError(exc.message, {"param": exc.param} if exc.param else None)


def checked_texts(request: EmbeddingsRequest) -> list[str]:
    """The request's texts once it is acceptable: OpenAI's rules, and what one Lambda response can carry."""
    try:
        texts = request.checked_texts()
    except InvalidRequest as exc:
        raise invalid(exc) from exc
    if request.format == "float" and len(texts) > MAX_FLOAT_INPUTS:
        raise ValidationFailedError(
            f"at most {MAX_FLOAT_INPUTS} inputs with encoding_format float (the reply would pass the 6 MB response "
            "limit); send encoding_format base64 (the openai SDK's default) or fewer inputs",
            {"param": "encoding_format"},
        )
    return texts


def parts_of(texts: Sequence[str]) -> list[list[str]]:
    """Consecutive runs of texts, each within one prediction's limits."""
    parts: list[list[str]] = [[]]
    size = 0
    for text in texts:
        length = len(text.encode())
        if parts[-1] and (len(parts[-1]) >= MAX_INPUTS or size + length > _PART_TEXT_BYTES):
            parts.append([])
            size = 0
        parts[-1].append(text)
        size += length
    return parts


def part_key(part: list[str], encoding_format: str) -> str:
    digest = hashlib.sha256(json.dumps([encoding_format, part], ensure_ascii=False).encode()).hexdigest()
    return f"openai-embeddings-{digest}"


async def embed(
    tenant_id: str, texts: list[str], encoding_format: str, wait_seconds: float, lane: Lane = Lane.INTERACTIVE
) -> Embeddings:
    parts = parts_of(texts)
    submitted = await asyncio.to_thread(_submit, tenant_id, parts, encoding_format, lane)
    finished = await asyncio.gather(
        *(predictions.wait_until_finished(tenant_id, p.id, wait_seconds) for p in submitted)
    )
    if not all(p.status.is_terminal for p in finished):
        raise NotFinished("the embeddings are still being computed: send the same request again to collect them")
    failed = [(p, part) for p, part in zip(finished, parts, strict=True) if p.status != PredictionStatus.SUCCEEDED]
    if failed:
        await asyncio.to_thread(_give_back_keys, tenant_id, failed, encoding_format)
        first = failed[0][0]
        reason = first.error.message if first.error else first.status.value
        if first.status == PredictionStatus.FAILED and first.error and first.error.code == "dispatch_failed":
            raise TransientError(f"the model endpoint could not take the request: {reason}")
        raise PermanentDependencyError(f"the model did not embed every input: {reason}")
    outputs = await asyncio.to_thread(lambda: [predictions.output_for(p) for p in finished])
    vectors: list[Any] = []
    for output in outputs:
        embeddings = (output or {}).get("embeddings")
        if not isinstance(embeddings, list):
            raise PermanentDependencyError("the model's output has no embeddings")
        vectors.extend(embeddings)
    if len(vectors) != len(texts):
        raise PermanentDependencyError("the model returned a different number of embeddings than inputs")
    return Embeddings(vectors=vectors, prompt_tokens=sum(estimated_tokens(text) for text in texts))


def _submit(tenant_id: str, parts: list[list[str]], encoding_format: str, lane: Lane) -> list[Prediction]:
    submitted = []
    for part in parts:
        request = NewPrediction(inputs=part, parameters={"encoding_format": encoding_format})
        prediction, _ = predictions.submit(
            tenant_id, request, idempotency_key=part_key(part, encoding_format), waiting=True, lane=lane
        )
        submitted.append(prediction)
    return submitted


def _give_back_keys(tenant_id: str, failed: list[tuple[Prediction, list[str]]], encoding_format: str) -> None:
    for prediction, part in failed:
        try:
            idempotency_store().release(tenant_id, part_key(part, encoding_format), prediction.id)
        except Exception:  # the key expires with its record anyway
            logger.warning("idempotency key not released", prediction_id=prediction.id)
