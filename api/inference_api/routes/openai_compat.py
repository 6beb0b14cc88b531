"""OpenAI's dialect: POST /v1/embeddings, GET /v1/models and GET /v1/models/{model}, in OpenAI's shapes, so the
official `openai` SDK, LangChain's `OpenAIEmbeddings` and LlamaIndex's `OpenAIEmbedding` work with only
`base_url` and `api_key` changed. Same tenants, keys, pipeline, cache and records as /v1/predictions; errors in
OpenAI's envelope (inference_api.errors)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from inference_api.auth import Tenant
from inference_api.schemas import MAX_WAIT_SECONDS
from inference_api.strict_json import LargeJsonRoute
from inference_core.domain import token_ids
from inference_core.errors import ValidationFailedError
from inference_core.logic import embeddings

router = APIRouter(prefix="/v1", route_class=LargeJsonRoute, tags=["openai-compatible"])


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


_ERRORS: dict[int | str, dict[str, type[BaseModel]]] = {
    status: {"model": OpenAIError} for status in (400, 401, 404, 413, 503)
}


class EmbeddingsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]],
        Field(
            description=f"A text, texts, or `cl100k_base` token ids (one list per text), at most "
            f"{embeddings.MAX_REQUEST_INPUTS} items."
        ),
    ]
    model: StrictStr = Field(description=f"`{embeddings.MODEL_ID}` (or `sentence-transformers/{embeddings.MODEL_ID}`).")
    encoding_format: Literal["float", "base64"] | None = Field(
        default=None, description="`float` (the default) or `base64` of little-endian float32 (the SDK's default)."
    )
    dimensions: StrictInt | None = Field(default=None, description=f"Only {embeddings.DIMENSIONS}, the model's.")
    user: StrictStr | None = Field(default=None, max_length=256, description="Accepted and not used.")

    def texts(self) -> list[str]:
        value = self.input
        if isinstance(value, str):
            return [value]
        if not value:
            raise ValidationFailedError("input must not be empty", {"param": "input"})
        if all(isinstance(item, int) for item in value):
            return [_decoded(value)]  # type: ignore[arg-type]
        if all(isinstance(item, str) for item in value):
            return list(value)  # type: ignore[arg-type]
        return [_decoded(item) for item in value]  # type: ignore[arg-type]


def _decoded(ids: list[int]) -> str:
    try:
        return token_ids.decode(ids)
    except token_ids.InvalidTokenIds as exc:
        raise ValidationFailedError(f"input: {exc}", {"param": "input"}) from exc


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
    return ModelOut(id=embeddings.MODEL_ID, created=embeddings.MODEL_CREATED, owned_by="sentence-transformers")


@router.post("/embeddings", response_model=EmbeddingsResponse, responses=_ERRORS)
async def create_embeddings(body: EmbeddingsCreate, tenant: Tenant) -> EmbeddingsResponse:
    """Embed texts and answer at once. Past about 20 s (API Gateway's limit is 30) the reply is 503 with
    `Retry-After`; the SDK retries, and the same request then collects what was computed meanwhile."""
    embeddings.check_model(body.model)
    texts = body.texts()
    encoding_format = body.encoding_format or "float"
    embeddings.check_request(texts, encoding_format, body.dimensions)
    result = await embeddings.embed(tenant, texts, encoding_format, MAX_WAIT_SECONDS)
    return EmbeddingsResponse(
        data=[EmbeddingItem(index=i, embedding=vector) for i, vector in enumerate(result.vectors)],
        model=embeddings.MODEL_ID,
        usage=EmbeddingsUsage(prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens),
    )


@router.get("/models", response_model=ModelList, responses=_ERRORS)
def list_models(tenant: Tenant) -> ModelList:
    return ModelList(data=[_model()])


@router.get("/models/{model:path}", response_model=ModelOut, responses=_ERRORS)
def get_model(model: str, tenant: Tenant) -> ModelOut:
    """`sentence-transformers/all-MiniLM-L6-v2` works too (the SDK sends the slash as %2F)."""
    embeddings.check_model(model)
    return _model()
