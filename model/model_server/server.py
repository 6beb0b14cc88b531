"""SageMaker's container contract: GET /ping, POST /invocations on port 8080."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from model_server.batcher import MicroBatcher
from model_server.config import ServerConfig, token_budget
from model_server.embedder import Embedder
from model_server.protocol import BodyError, LineError, LineRequest, parse_body, success_line

log = logging.getLogger("model_server")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


# SageMaker passes InvokeEndpointAsync's CustomAttributes to the container in this header, unchanged.
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"


def _is_bulk(request: Request) -> bool:
    """Job chunks are sent with `priority=bulk`: they yield to interactive batches between slices."""
    attributes = request.headers.get(CUSTOM_ATTRIBUTES, "")
    return "priority=bulk" in {part.strip() for part in attributes.split(",")}


def create_app(config: ServerConfig | None = None, embedder: Embedder | None = None) -> FastAPI:
    settings = config or ServerConfig.from_env()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        model = embedder or Embedder(settings.model_dir, settings.device, settings.num_threads)
        log.info("model loaded: %s on %s (%d dimensions)", model.name, model.device, model.dimensions)
        batcher = MicroBatcher(
            model,
            token_budget(settings.max_tokens_per_batch, model.device.type),
            settings.max_batch_size,
            settings.merge_window_ms,
            settings.max_texts_per_merge,
            settings.bulk_slice_texts or (128 if model.device.type == "cuda" else 4),
        )
        batcher.start()
        state["embedder"], state["batcher"] = model, batcher
        yield
        await batcher.stop()

    app = FastAPI(title="Embedding model server", lifespan=lifespan)

    @app.get("/ping")
    def ping() -> Response:
        if "embedder" not in state:
            return _error(503, "loading", "the model is still loading")
        return JSONResponse({"status": "healthy", "model": state["embedder"].name})

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        if "batcher" not in state:
            return _error(503, "loading", "the model is still loading")
        model: Embedder = state["embedder"]
        batcher: MicroBatcher = state["batcher"]
        try:
            entries = parse_body(
                await request.body(),
                request.headers.get("content-type", ""),
                settings.max_inputs_per_line,
                settings.max_input_chars,
            )
        except BodyError as exc:
            return _error(exc.status, exc.code, str(exc))
        requests = [e for e in entries if isinstance(e, LineRequest)]
        texts = [text for entry in requests for text in entry.inputs]
        # Per line: its 'normalize' parameter, else the model's own setting. Lines that differ share a forward pass.
        normalize = [
            model.pooling.normalize if entry.normalize is None else entry.normalize
            for entry in requests
            for _ in entry.inputs
        ]
        try:
            result = await batcher.embed(texts, normalize, bulk=_is_bulk(request)) if texts else None
        except Exception as exc:  # out of memory, a broken model: the whole invocation fails
            log.exception("model failure")
            return _error(500, "model_failure", f"{type(exc).__name__}: {exc}")
        # Rounded to 7 decimals in float64 (cosine parity stays far above 0.9999): each value prints in at most 10
        # characters. Rounded as float32, each would print as the float64 repr of a float32 (up to 20): twice the
        # bytes in every output object, API reply, result file and byte of data transfer.
        vectors = np.round(result.vectors.astype(np.float64), 7).tolist() if result else []
        answers: list[str] = []
        start = 0
        for entry in entries:
            if isinstance(entry, LineError):
                answers.append(entry.to_json())
                continue
            end = start + len(entry.inputs)
            truncated = result.truncated[start:end] if result else []
            answers.append(success_line(entry.id, model.name, vectors[start:end], truncated))
            start = end
        return Response("\n".join(answers) + "\n", media_type="application/jsonlines")

    return app
