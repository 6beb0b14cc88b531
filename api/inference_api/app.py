"""Builds the FastAPI application; the same app runs in Lambda (Mangum) and locally (uvicorn)."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from inference_api import errors
from inference_api.auth import RATE_STATE
from inference_api.errors import request_id_of
from inference_api.routes import (
    health,
    jobs,
    openai_batches,
    openai_compat,
    openai_files,
    predictions,
    usage,
    webhooks,
)
from inference_api.routes.openai_files import FORM_OVERHEAD_BYTES
from inference_api.schemas import LARGE_BODY_BYTES, MAX_BODY_BYTES
from inference_core.domain.clock import utc_now
from inference_core.observability import MetricUnit, metrics
from inference_core.settings import get_settings

DOCS_ASSETS_URL = "/docs/static"
# An embedding's JSON shrinks to about half gzipped: data transfer out is billed per byte; level 5 costs ~0.1 ms.
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 5


def docs_assets() -> Path | None:
    """Swagger UI's files as the fastapi-offline package ships them, found without importing it; None if absent."""
    spec = importlib.util.find_spec("fastapi_offline")
    for location in (spec.submodule_search_locations or []) if spec else []:
        static = Path(location) / "static"
        if (static / "swagger-ui-bundle.js").is_file():
            return static
    return None


def install_docs(app: FastAPI, assets: Path) -> None:
    """/docs from files this app serves itself (FastAPI's own /docs loads Swagger UI from a CDN: blank offline)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        )


def _body_limit(path: str) -> int:
    if path == "/v1/embeddings":
        return LARGE_BODY_BYTES
    if path == "/v1/files":
        return get_settings().file_max_bytes + FORM_OVERHEAD_BYTES
    return MAX_BODY_BYTES


def create_app() -> FastAPI:
    assets = docs_assets()
    app = FastAPI(
        title="Inference API",
        version="1.0.0",
        description="Submit inference requests, then read their status and results. Authenticate with a Bearer key.",
        # Should a build lack the assets package, FastAPI's own CDN-based /docs beats no docs at all.
        docs_url=None if assets else "/docs",
        redoc_url=None,
    )
    if assets:
        install_docs(app, assets)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(predictions.router)
    app.include_router(jobs.router)
    app.include_router(webhooks.router)
    app.include_router(usage.router)
    app.include_router(openai_compat.router)
    app.include_router(openai_files.router)
    app.include_router(openai_batches.router)

    @app.middleware("http")
    async def reject_large_bodies(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Refuse by Content-Length before reading anything; the route re-checks the body it actually got.
        limit = _body_limit(request.url.path)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            return errors.error_for(request, 413, "payload_too_large", f"the body is larger than {limit} bytes")
        response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            name = "RequestsRejected" if 400 <= response.status_code < 500 else "RequestsServed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return response

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # OpenAI clients expose it as `_request_id` / `error.request_id`; every reply carries one.
        response = await call_next(request)
        response.headers.setdefault("x-request-id", request_id_of(request))
        rate = request.scope.get("state", {}).get(RATE_STATE)
        if rate is not None:  # every authenticated reply says where the tenant stands (a 429 says it already)
            for name, value in rate.headers(utc_now()).items():
                response.headers.setdefault(name, value)
        return response

    # Outermost, so it compresses the final reply, for clients that send Accept-Encoding: gzip (httpx, the
    # openai SDK and requests all do). Mangum then returns the body base64-encoded; API Gateway sends the bytes.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    return app
