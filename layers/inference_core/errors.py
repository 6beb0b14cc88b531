"""Typed domain errors. The API maps them to HTTP in one place (inference_api.errors)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error that a caller can act on."""

    code = "error"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(DomainError):
    code = "not_found"


class AuthenticationError(DomainError):
    code = "unauthorized"


class ConflictError(DomainError):
    code = "conflict"


class IdempotencyConflictError(ConflictError):
    code = "idempotency_key_reused"


class InvalidStateError(ConflictError):
    code = "invalid_state"


class ValidationFailedError(DomainError):
    code = "invalid_request"


class PayloadTooLargeError(DomainError):
    code = "payload_too_large"


class RateLimitedError(DomainError):
    """Over one of the tenant's limits: retry after `retry_after` seconds; `headers` say where the tenant stands."""

    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        retry_after: int,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after
        self.headers = headers or {}


class DependencyError(DomainError):
    """An AWS dependency failed. `reason` says why in words fit for a status record; `aws_error` is its code."""

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        reason: str = "",
        aws_error: str | None = None,
    ) -> None:
        super().__init__(message, details)
        self.reason = reason or message
        self.aws_error = aws_error


class TransientError(DependencyError):
    """A dependency failed in a way that a retry may fix (throttling, timeouts, 5xx)."""

    code = "unavailable"


class PermanentDependencyError(DependencyError):
    """A dependency refused the request in a way no retry fixes (missing endpoint, access denied)."""

    code = "dependency_error"


class ConfigurationError(RuntimeError):
    """The function's environment lacks a setting the template is meant to give it."""
