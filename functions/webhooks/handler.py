"""Webhook sender: each record is one event to deliver (signed, checked against the network guard at send time).

A delivery that may pass later is hidden until its next attempt is due and reported as failed, so SQS brings it
back; after the queue's maxReceiveCount it moves to the dead-letter queue. Each record fails alone.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.dal.webhook_events import EventMessage, webhook_events
from inference_core.logic.webhooks import RetryLater, deliver
from inference_core.observability import logger, metrics
from inference_core.sqs_batch import RetryRecord, SqsRecord, each_record, receive_count

# Must equal the WebhookQueue's redrive maxReceiveCount (the template sets both from one parameter).
MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))


def record_handler(record: SqsRecord) -> None:
    attempt = receive_count(record)
    message = EventMessage.from_json(str(record.get("body", "")))  # a malformed event fails alone, then the DLQ
    try:
        deliver(message, attempt, last_attempt=attempt >= MAX_ATTEMPTS)
    except RetryLater as later:
        webhook_events().retry_in(record["receiptHandle"], later.seconds)
        raise RetryRecord from later


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return each_record(event, record_handler)
