"""Job intake consumer: each record is an S3 ObjectCreated notification (an uploaded or dropped JSONL file) or a
job command. Each record fails alone; S3 events are delivered at least once and a second delivery of one event
changes nothing."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.logic.job_intake import handle_message
from inference_core.observability import logger, metrics
from inference_core.sqs_batch import SqsRecord, each_record


def record_handler(record: SqsRecord) -> None:
    outcome = handle_message(str(record.get("body", "")))
    logger.info("intake message handled", jobs=outcome.jobs, ignored=len(outcome.ignored))


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return each_record(event, record_handler)
