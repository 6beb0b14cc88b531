"""The partial batch response every per-record SQS consumer returns (the completion, jobs and webhook functions).

Each record is its own unit of work and fails alone, as Powertools' `BatchProcessor` would have it; the loop is
written here once because that utility's import alone costs more than the rest of these functions' cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inference_core.observability import logger

SqsRecord = Mapping[str, Any]


class RetryRecord(Exception):
    """Fail this record so that SQS delivers it again, without an error in the log: a retry that was expected."""


def each_record(event: Mapping[str, Any], handle: Callable[[SqsRecord], object]) -> dict[str, Any]:
    """Run `handle` on every record of a Lambda SQS event; the records it raised on go back to the queue (and, after
    the queue's maxReceiveCount, to its dead-letter queue)."""
    failures = []
    for record in event.get("Records", []):
        try:
            handle(record)
        except RetryRecord:
            failures.append({"itemIdentifier": record.get("messageId", "")})
        except Exception as exc:  # any failure, expected or not, fails this record alone
            logger.exception("record failed", message_id=record.get("messageId"), error_type=type(exc).__name__)
            failures.append({"itemIdentifier": record.get("messageId", "")})
        finally:
            logger.set_correlation_id(None)
    return {"batchItemFailures": failures}


def receive_count(record: SqsRecord) -> int:
    """How many times SQS has delivered this record (1 on the first delivery); a value that is not a count is 1."""
    value = str(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    return int(value) if value.isdigit() and int(value) > 0 else 1
