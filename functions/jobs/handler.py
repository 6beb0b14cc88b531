"""Job intake consumer: each record is an S3 ObjectCreated notification (an uploaded or dropped JSONL file) or a
job command. Each record fails alone (partial batch response); S3 events are delivered at least once and a
second delivery of one event changes nothing."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.logic.job_intake import handle_message
from inference_core.observability import logger, metrics


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            outcome = handle_message(str(record.get("body", "")))
            logger.info("intake message handled", jobs=outcome.jobs, ignored=len(outcome.ignored))
        except Exception as exc:  # every failure fails this record alone, for SQS to retry and then dead-letter
            logger.exception("intake message failed", message_id=record.get("messageId"), error_type=type(exc).__name__)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
