"""OpenAI's dialect: POST /v1/embeddings, GET /v1/models and GET /v1/models/{model}, in OpenAI's shapes, so the
official `openai` SDK, LangChain's `OpenAIEmbeddings` and LlamaIndex's `OpenAIEmbedding` work with only
`base_url` and `api_key` changed. Same tenants, keys, pipeline, cache and records as /v1/predictions; errors in
OpenAI's envelope (inference_api.errors)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from inference_api.auth import CountingTenant, Tenant, admit_async
from inference_api.openapi import replies
from inference_api.schemas import MAX_WAIT_SECONDS
from inference_api.strict_json import LargeJsonRoute
from inference_core.domain import openai_dialect as dialect
from inference_core.domain.openai_requests import EmbeddingsRequest
from inference_core.logic import embeddings
from inference_core.logic.views import BUILT_ON_FIRST_USE

router = APIRouter(prefix="/v1", route_class=LargeJsonRoute, tags=["openai-compatible"])


class OpenAIErrorBody(BaseModel):
    model_config = BUILT_ON_FIRST_USE  # documented only: the error handlers write it

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    model_config = BUILT_ON_FIRST_USE  # documented only: the error handlers write it

    error: OpenAIErrorBody


OPENAI_ERRORS = replies(OpenAIError, 400, 401, 404, 409, 413, 429, 503)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


def _model() -> ModelOut:
    return ModelOut(id=dialect.MODEL_ID, created=dialect.MODEL_CREATED, owned_by=dialect.MODEL_OWNER)


@router.post("/embeddings", response_model=EmbeddingsResponse, responses=OPENAI_ERRORS)
async def create_embeddings(body: EmbeddingsRequest, request: Request, tenant: CountingTenant) -> EmbeddingsResponse:
    """Embed texts and answer at once. Past about 20 s (API Gateway's limit is 30) the reply is 503 with
    `Retry-After`; the SDK retries, and the same request then collects what was computed meanwhile."""
    texts = embeddings.checked_texts(body)
    state = await admit_async(request, tenant, len(texts))
    result = await embeddings.embed(tenant, texts, body.format, MAX_WAIT_SECONDS, state.lane)
    return EmbeddingsResponse(
        data=[EmbeddingItem(index=i, embedding=vector) for i, vector in enumerate(result.vectors)],
        model=dialect.MODEL_ID,
        usage=EmbeddingsUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )


@router.get("/models", response_model=ModelList, responses=OPENAI_ERRORS)
def list_models(tenant: Tenant) -> ModelList:
    return ModelList(data=[_model()])


@router.get("/models/{model:path}", response_model=ModelOut, responses=OPENAI_ERRORS)
def get_model(model: str, tenant: Tenant) -> ModelOut:
    """`sentence-transformers/all-MiniLM-L6-v2` works too (the SDK sends the slash as %2F)."""
    if not dialect.is_known_model(model):
        raise embeddings.invalid(dialect.unknown_model(model))
    return _model()
