"""Request-queue consumer (both lanes): one SQS batch -> one batch object in S3 -> one InvokeEndpointAsync.

The whole batch is one unit of work, so this handler builds the partial batch response itself instead of
using Powertools' per-record BatchProcessor (whose import alone would double the cold start).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.dal.queue import lane_of_source
from inference_core.domain.limits import Lane
from inference_core.logic.dispatch import QueuedMessage, dispatch
from inference_core.observability import logger, metrics
from inference_core.sqs_batch import SqsRecord, receive_count


def _message(record: SqsRecord) -> QueuedMessage:
    return QueuedMessage(
        message_id=str(record["messageId"]),
        body=str(record.get("body", "")),
        receive_count=receive_count(record),
    )


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    # One event source mapping per lane: every record of an event comes from the same queue.
    lane = lane_of_source(str(records[0].get("eventSourceARN", ""))) if records else Lane.INTERACTIVE
    outcome = dispatch([_message(record) for record in records], lane=lane)
    if outcome.batch_id:
        logger.append_keys(batch_id=outcome.batch_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in outcome.failed_message_ids]}
