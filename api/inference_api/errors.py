"""The one place that maps errors to HTTP: as {"error": {"code", "message", "details"}} on the native routes, and
in OpenAI's envelope {"error": {"message", "type", "param", "code"}} on the OpenAI-compatible ones (/v1/embeddings,
/v1/models, /v1/files, /v1/batches), whose clients map the status to their exception classes."""

from __future__ import annotations

import uuid
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
    RateLimitedError,
    TransientError,
    ValidationFailedError,
)
from inference_core.observability import logger

_STATUS: list[tuple[type[DomainError], int]] = [
    (PayloadTooLargeError, 413),
    (AuthenticationError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RateLimitedError, 429),
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


OPENAI_PATHS = ("/v1/embeddings", "/v1/models", "/v1/files", "/v1/batches")
# Our codes that carry a meaning of their own in OpenAI's dialect.
_OPENAI_CODES = {"unauthorized": "invalid_api_key", "model_not_found": "model_not_found"}


def request_id_of(request: Request) -> str:
    """One id per request, kept on its scope so that the error body and the header agree."""
    state = request.scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = f"req_{uuid.uuid4().hex}"
    return str(state["request_id"])


def is_openai(request: Request) -> bool:
    path = request.url.path
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OPENAI_PATHS)


def openai_error_response(
    request: Request,
    status: int,
    code: str | None,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if status == 401:
        kind = "invalid_request_error"
    elif status == 429:
        kind = "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    replied = {"x-request-id": request_id_of(request)}
    if (400 <= status < 500 and status not in (408, 429)) or status == 502:
        replied["x-should-retry"] = "false"  # the SDK retries 409 and 5xx by default: these need a change first
    headers = {**replied, **(headers or {})}
    body = {"error": {"message": message, "type": kind, "param": param, "code": _OPENAI_CODES.get(code or "", code)}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def error_for(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """The reply for an error, in the dialect of the route it happened on."""
    if is_openai(request):
        return openai_error_response(request, status, code, message, param, headers)
    return error_response(status, code, message, details, headers)


def _domain_status(exc: DomainError) -> int:
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 400)


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = _domain_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 503 else None
    if isinstance(exc, RateLimitedError):
        headers = {**exc.headers, "Retry-After": str(exc.retry_after)}
    param = exc.details.get("param") if isinstance(exc.details.get("param"), str) else None
    return error_for(request, status, exc.code, exc.message, exc.details or None, headers, param)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": list(err.get("loc", [])), "message": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    if any(err["type"] == "json_invalid" for err in errors):
        return error_for(request, 400, "malformed_json", "the request body is not valid JSON", errors)
    if is_openai(request):  # OpenAI answers every malformed request 400, naming the first field at fault
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        fields = [str(part) for part in first["location"] if part != "body"]
        where = ".".join(fields)
        message = f"{where}: {first['message']}" if where else str(first["message"])
        return openai_error_response(request, 400, "invalid_request", message, fields[0] if fields else None)
    return error_response(422, "invalid_request", "the request does not match the schema", errors)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_for(request, exc.status_code, code, str(exc.detail), headers=headers)


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


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", error_type=type(exc).__name__)
    message = "something went wrong on our side; the request may be retried"
    if is_openai(request):
        return openai_error_response(request, 500, "internal_error", message, headers={"x-should-retry": "true"})
    return error_response(500, "internal_error", message)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
