"""The one place that maps errors to HTTP, always as {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from inference_core.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    NotFoundError,
    PayloadTooLargeError,
    PermanentDependencyError,
    TransientError,
    ValidationFailedError,
)
from inference_core.observability import logger

_STATUS: list[tuple[type[DomainError], int]] = [
    (PayloadTooLargeError, 413),
    (AuthenticationError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (ValidationFailedError, 400),
    (TransientError, 503),
    (PermanentDependencyError, 502),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class InvalidTextError(ValidationFailedError):
    code = "invalid_text"


class TooDeeplyNestedError(ValidationFailedError):
    code = "too_deeply_nested"


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _domain_status(exc: DomainError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 400)


async def _on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = _domain_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 503 else None
    return error_response(status, exc.code, exc.message, exc.details or None, headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": list(err.get("loc", [])), "message": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    if any(err["type"] == "json_invalid" for err in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON", errors)
    return error_response(422, "invalid_request", "the request does not match the schema", errors)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette names only the first matching route's)."""
    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()
    pending = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        if getattr(route, "methods", None):
            if route.matches(scope)[0] != Match.NONE:
                methods |= set(route.methods)
        elif route.matches(scope)[0] != Match.NONE:
            # An included router (FastAPI wraps it; the pinned version keeps it as `original_router`).
            router = getattr(route, "original_router", route)
            pending += getattr(router, "routes", [])
    return ", ".join(sorted(methods))


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "something went wrong on our side; the request may be retried")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
