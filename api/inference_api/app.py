"""Builds the FastAPI application; the same app runs in Lambda (Mangum) and locally (uvicorn)."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from inference_api import errors, openapi
from inference_api.auth import RATE_STATE
from inference_api.errors import request_id_of
from inference_api.strict_json import FORM_OVERHEAD_BYTES, LARGE_BODY_BYTES, MAX_BODY_BYTES
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


# Each module of inference_api.routes, and the paths its routes serve. A group is imported and its routes added on
# the first request under one of its paths, so a cold start builds only what its request needs (the routes and
# their pydantic models were over a quarter of the API's import); /openapi.json loads them all.
ROUTE_GROUPS: dict[str, tuple[str, ...]] = {
    "health": ("/health",),
    "predictions": ("/v1/predictions",),
    "jobs": ("/v1/jobs",),
    "webhooks": ("/v1/webhooks",),
    "usage": ("/v1/usage",),
    "openai_compat": ("/v1/embeddings", "/v1/models"),
    "openai_files": ("/v1/files",),
    "openai_batches": ("/v1/batches",),
}


class RouteGroups:
    """The app's route groups, each added once, when first needed."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._loaded: set[str] = set()
        self._lock = threading.Lock()  # the app may serve from several threads (a test client, a threaded server)

    @property
    def loaded(self) -> frozenset[str]:
        return frozenset(self._loaded)

    def load(self, group: str) -> None:
        with self._lock:
            if group not in self._loaded:
                module = importlib.import_module(f"inference_api.routes.{group}")
                self.app.include_router(module.router)
                self._loaded.add(group)

    def load_for(self, path: str) -> None:
        for group, prefixes in ROUTE_GROUPS.items():
            if group not in self._loaded and path.startswith(prefixes):
                self.load(group)

    def load_all(self) -> None:
        for group in ROUTE_GROUPS:
            self.load(group)


class LoadRoutes:
    """ASGI middleware: the request's route group is in the app before the router matches the request."""

    def __init__(self, app: ASGIApp, groups: RouteGroups) -> None:
        self.app = app
        self.groups = groups

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, root = str(scope["path"]), str(scope.get("root_path", ""))
            self.groups.load_for(path[len(root) :] if root and path.startswith(root) else path)
        await self.app(scope, receive, send)


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
    groups = RouteGroups(app)
    app.state.route_groups = groups
    openapi.install(app, before=groups.load_all)
    app.add_middleware(LoadRoutes, groups=groups)

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
