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

# Must equal the WebhookQueue's redrive maxReceiveCount (the template sets both from one parameter).
MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            message = EventMessage.from_json(str(record.get("body", "")))
            deliver(message, attempt, last_attempt=attempt >= MAX_ATTEMPTS)
        except RetryLater as later:
            webhook_events().retry_in(record["receiptHandle"], later.seconds)
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception as exc:  # a malformed event or a dependency failure: retried by SQS, then dead-lettered
            logger.exception("webhook event failed", message_id=record.get("messageId"), error_type=type(exc).__name__)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
