"""The one translation of boto3/botocore failures into typed domain errors."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.errors import DependencyError, NotFoundError, PermanentDependencyError, TransientError

# Codes after which the same request may succeed later, across DynamoDB, S3, SQS and SageMaker Runtime.
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "InternalDependencyException",
        "ServiceUnavailable",
        "ModelNotReadyError",
        "TransactionConflictException",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NoSuchBucket"})
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"
# Why DynamoDB cancels one item of a transaction: its condition, or a reason a retry may pass (another transaction on
# the same item, throttling). "None" marks the items that were fine.
_ITEM_CONDITION_FAILED = "ConditionalCheckFailed"
_ITEM_RETRYABLE = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class AwsFailure(StrEnum):
    TRANSIENT = "transient"
    NOT_FOUND = "not_found"
    CONDITION_FAILED = "condition_failed"
    REFUSED = "refused"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cancellation_reasons(exc: ClientError) -> list[str]:
    response: Any = exc.response
    return [str(reason.get("Code") or "None") for reason in response.get("CancellationReasons") or []]


def condition_failed(exc: ClientError | BotoCoreError, item: int | None = None) -> bool:
    """The one test for "the write was refused by its condition": a single write's ConditionalCheckFailed, or a
    transaction cancelled by conditions alone. `item` asks about one item of the transaction (its index)."""
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code == CONDITION_FAILED:
        return item in (None, 0)
    if code != TRANSACTION_CANCELLED:
        return False
    reasons = _cancellation_reasons(exc)
    if _ITEM_CONDITION_FAILED not in reasons or any(r not in ("None", _ITEM_CONDITION_FAILED) for r in reasons):
        return False
    return item is None or (item < len(reasons) and reasons[item] == _ITEM_CONDITION_FAILED)


def conflicted(exc: ClientError | BotoCoreError) -> bool:
    """A transaction cancelled only because another one touched the same item at the same time (or throttling):
    it had no effect, and the same transaction may simply be sent again."""
    if not isinstance(exc, ClientError) or error_code(exc) != TRANSACTION_CANCELLED:
        return False
    reasons = set(_cancellation_reasons(exc))
    return bool(reasons & _ITEM_RETRYABLE) and reasons <= _ITEM_RETRYABLE | {"None"}


def classify(exc: ClientError | BotoCoreError) -> AwsFailure:
    if isinstance(exc, BotoCoreError):
        return AwsFailure.TRANSIENT  # connection errors and timeouts
    code = error_code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if condition_failed(exc):
        return AwsFailure.CONDITION_FAILED
    if code == TRANSACTION_CANCELLED and _ITEM_RETRYABLE & set(_cancellation_reasons(exc)):
        return AwsFailure.TRANSIENT  # a concurrent transaction on a hot item (the chunk gate), or throttling
    if code in _NOT_FOUND_CODES:
        return AwsFailure.NOT_FOUND
    if code in _TRANSIENT_CODES or status == 429 or status >= 500:
        return AwsFailure.TRANSIENT
    return AwsFailure.REFUSED


def translate(exc: ClientError | BotoCoreError, message: str, details: dict[str, Any] | None = None) -> Exception:
    """The domain error to raise `from exc`: transient (retry), not found, or permanent (configuration)."""
    failure = classify(exc)
    if isinstance(exc, ClientError):
        code: str | None = error_code(exc)
        reason = str(exc.response.get("Error", {}).get("Message") or code)
    else:
        code, reason = None, type(exc).__name__
    if failure is AwsFailure.NOT_FOUND:
        return NotFoundError(message, details)
    error_type: type[DependencyError] = TransientError if failure is AwsFailure.TRANSIENT else PermanentDependencyError
    return error_type(message, {**(details or {}), "aws_error": code}, reason=reason, aws_error=code)
