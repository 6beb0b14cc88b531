"""Completion-queue consumer: each record is one SageMaker async notification (delivered by SNS), for a batch of
predictions or for one chunk of a bulk job (told apart by the inference id).

Each record is its own unit of work and fails alone (partial batch response), as Powertools' BatchProcessor
would do; the loop is written out because that utility's import costs more than the rest of this function's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.domain.clock import utc_now
from inference_core.logic.completion import complete, parse_notification
from inference_core.logic.job_runs import complete_chunk, is_job_chunk
from inference_core.logic.result_cache import gathered_write_back
from inference_core.observability import logger, metrics


def record_handler(body: str) -> None:
    notification = parse_notification(body)  # a malformed one raises and fails this record alone
    logger.set_correlation_id(notification.inference_id)
    if is_job_chunk(notification.inference_id):
        chunk = complete_chunk(notification)
        logger.info("job chunk completed", job_id=chunk.job_id, chunk=chunk.chunk, finished=chunk.finished)
        return
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
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    # Fresh results of every batch in this event go back to the result cache together, after the last one.
    with gathered_write_back(utc_now):
        for record in event.get("Records", []):
            try:
                record_handler(str(record.get("body", "")))
            except Exception as exc:  # every failure, expected or not, fails this record alone for SQS to retry
                logger.exception(
                    "notification failed", message_id=record.get("messageId"), error_type=type(exc).__name__
                )
                failures.append({"itemIdentifier": record["messageId"]})
            finally:
                logger.set_correlation_id(None)
    return {"batchItemFailures": failures}
