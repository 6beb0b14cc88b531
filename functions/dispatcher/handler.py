"""Request-queue consumer: one SQS batch -> one batch object in S3 -> one InvokeEndpointAsync.

The whole batch is one unit of work, so this handler builds the partial batch response itself instead of
using Powertools' per-record BatchProcessor.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.logic.dispatch import QueuedMessage, dispatch
from inference_core.observability import logger, metrics, tracer


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    messages = [
        QueuedMessage(
            message_id=record.message_id,
            body=record.body,
            receive_count=int(record.attributes.approximate_receive_count or 1),
        )
        for record in SQSEvent(event).records
    ]
    outcome = dispatch(messages)
    if outcome.batch_id:
        tracer.put_annotation("batch_id", outcome.batch_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.failed_message_ids]}
