"""Every error the client raises derives from `InferenceError`.

`APIError` and its subclasses carry the API's own `{"error": {"code", "message", "details"}}`; the others say that
the API could not be reached (`APIConnectionError`), that the client is failing fast (`CircuitOpenError`), that the
input cannot be sent as it is (`InvalidInputError`), that a prediction ended without a result (`PredictionError`),
that a job has no results to give (`JobError`), or that a received webhook is not authentic
(`WebhookVerificationError`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from inference_client.models import Job, Prediction


class InferenceError(Exception):
    """Base of every error raised by inference_client."""


class ConfigurationError(InferenceError):
    """The client lacks a setting (API URL or key) or was given an unusable one."""


class InvalidInputError(InferenceError, ValueError):
    """An input cannot be sent as it is (empty, too long, not valid Unicode). Nothing was sent."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ResponseFormatError(InferenceError):
    """The API answered with something that is not the documented shape."""


class APIConnectionError(InferenceError):
    """The API could not be reached (connection refused or reset, DNS failure, timeout), after every retry."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class APITimeoutError(APIConnectionError):
    """The API did not answer in time, after every retry."""


class CircuitOpenError(InferenceError):
    """The circuit breaker is open: after `consecutive_failures` failures in a row the client fails fast, without
    sending anything, until `retry_after` seconds have passed (then it lets one probe request through)."""

    def __init__(self, *, state: str, consecutive_failures: int, retry_after: float | None) -> None:
        if retry_after is None:
            wait = "a probe request is in flight"
        else:
            wait = f"the next probe is allowed in {retry_after:.1f}s"
        super().__init__(
            f"circuit breaker {state} after {consecutive_failures} consecutive failures: failing fast ({wait})"
        )
        self.state = state
        self.consecutive_failures = consecutive_failures
        self.retry_after = retry_after


class APIError(InferenceError):
    """The API answered with an error status. `code`, `message` and `details` are the API's error body."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.details = details
        self.headers = dict(headers or {})
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code}, {self.code})"

    def to_dict(self) -> dict[str, Any]:
        """The API's error body: {"error": {"code", "message", "details"}}."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    @classmethod
    def from_response(cls, response: httpx.Response, *, attempts: int = 1) -> APIError:
        """The typed error for an error response, from its `{"error": {...}}` body (or its status if it has none)."""
        status = response.status_code
        code, message, details = f"http_{status}", response.reason_phrase or f"HTTP {status}", None
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
            details = error.get("details")
        elif isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]  # e.g. an API gateway's own {"message": "..."}
        elif body is None and (s3_code := _S3_CODE.search(response.content)) is not None:
            # A presigned S3 link's own refusal: <Error><Code>AccessDenied</Code><Message>Request has expired...
            code = s3_code.group(1).decode(errors="replace")
            s3_message = _S3_MESSAGE.search(response.content)
            message = s3_message.group(1).decode(errors="replace") if s3_message else message
        error_class = _class_for(status, code)
        return error_class(
            message,
            status_code=status,
            code=code,
            details=details,
            headers={k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS},
            attempts=attempts,
        )


class BadRequestError(APIError):
    """400: malformed JSON, invalid text, too deep nesting, bad cursor or header."""


class AuthenticationError(APIError):
    """401: missing, invalid or revoked API key."""


class PermissionDeniedError(APIError):
    """403."""


class NotFoundError(APIError):
    """404: unknown id, or another tenant's."""


class ConflictError(APIError):
    """409: an Idempotency-Key reused with another body, cancelling a finished prediction or job, or retrying a job
    that has not finished or has no failed lines."""


class IdempotencyConflictError(ConflictError):
    """409 `idempotency_key_reused`: this Idempotency-Key was already used with a different body."""


class PayloadTooLargeError(APIError):
    """413: the request body is over the API's limit."""


class UnprocessableEntityError(APIError):
    """422: the request does not match the schema (`details` name the field)."""


class RateLimitError(APIError):
    """429, after every retry."""


class ServerError(APIError):
    """5xx, after every retry."""


class PredictionError(InferenceError):
    """A prediction ended `failed`, `cancelled` or `expired` where a result was needed."""

    def __init__(self, prediction: Prediction) -> None:
        reason = f": {prediction.error.code}: {prediction.error.message}" if prediction.error else ""
        super().__init__(f"prediction {prediction.id} ended {prediction.status.value}{reason}")
        self.prediction = prediction


class JobError(InferenceError):
    """A job ended `failed`, `cancelled` or `expired` where its results were needed, or has not finished yet."""

    def __init__(self, job: Job, message: str | None = None) -> None:
        if message is None:
            reason = f": {job.error.code}: {job.error.message}" if job.error else ""
            message = f"job {job.id} ended {job.status.value}{reason}"
        super().__init__(message)
        self.job = job


class WaitTimeoutError(InferenceError):
    """A prediction (or a job: `kind`) was not finished within the time given to wait for it."""

    def __init__(self, prediction_id: str, status: str, timeout: float, *, kind: str = "prediction") -> None:
        super().__init__(f"{kind} {prediction_id} still {status} after {timeout:g}s")
        self.prediction_id = prediction_id  # the job's id for a job (the name predates jobs)
        self.status = status
        self.timeout = timeout
        self.kind = kind


class WebhookVerificationError(InferenceError):
    """A received webhook failed verification (`verify_webhook`): do not act on it. `reason` says why, as one of
    `missing_header`, `invalid_timestamp`, `timestamp_too_old`, `timestamp_too_new`, `invalid_signature_header`,
    `no_matching_signature` or `invalid_payload` (signed, but not a JSON object)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"webhook verification failed: {message} ({reason})")
        self.reason = reason


_S3_CODE = re.compile(rb"<Error>.*?<Code>([^<]{1,200})</Code>", re.DOTALL)
_S3_MESSAGE = re.compile(rb"<Error>.*?<Message>([^<]{1,1000})</Message>", re.DOTALL)
_KEPT_HEADERS = {"retry-after", "www-authenticate", "location", "x-request-id", "apigw-requestid"}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _class_for(status: int, code: str) -> type[APIError]:
    if status == 409 and code == "idempotency_key_reused":
        return IdempotencyConflictError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
