"""Completion-queue consumer: each record is one SageMaker async notification (delivered by SNS)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.logic.completion import complete, parse_notification
from inference_core.observability import logger, metrics, tracer

# Report every failed record, even when all failed, instead of raising: the partial response says the same thing.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    notification = parse_notification(record.body)  # a malformed one raises and fails this record alone
    logger.set_correlation_id(notification.inference_id)
    outcome = complete(notification)
    logger.info(
        "batch completed",
        batch_id=outcome.batch_id,
        succeeded=len(outcome.succeeded),
        failed=len(outcome.failed),
        ignored=len(outcome.ignored),
    )


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
