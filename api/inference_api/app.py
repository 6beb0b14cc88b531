"""Builds the FastAPI application; the same app runs in Lambda (Mangum) and locally (uvicorn)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from inference_api import errors
from inference_api.routes import health, predictions
from inference_api.schemas import MAX_BODY_BYTES
from inference_core.observability import MetricUnit, metrics


def create_app() -> FastAPI:
    app = FastAPI(
        title="Inference API",
        version="1.0.0",
        description="Submit inference requests, then read their status and results. Authenticate with a Bearer key.",
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(predictions.router)

    @app.middleware("http")
    async def reject_large_bodies(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Refuse by Content-Length before reading anything; the route re-checks the body it actually got.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return errors.error_response(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            name = "RequestsRejected" if 400 <= response.status_code < 500 else "RequestsServed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return response

    return app
