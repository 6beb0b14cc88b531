"""Completion-queue consumer: each record is one SageMaker async notification (delivered by SNS), for a batch of
predictions or for one chunk of a bulk job (told apart by the inference id). Each record fails alone."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.domain.batches import is_job_chunk
from inference_core.domain.clock import utc_now
from inference_core.logic.completion import complete, parse_notification
from inference_core.logic.result_cache import gathered_write_back
from inference_core.observability import logger, metrics
from inference_core.sqs_batch import SqsRecord, each_record


def record_handler(record: SqsRecord) -> None:
    notification = parse_notification(str(record.get("body", "")))  # a malformed one fails this record alone
    logger.set_correlation_id(notification.inference_id)
    if is_job_chunk(notification.inference_id):
        # Here, not at the top: an interactive-only function never loads the bulk path (~25 ms of cold start).
        from inference_core.logic import job_driver

        chunk = job_driver.on_notification(notification)
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
    # Fresh results of every batch in this event go back to the result cache together, after the last one.
    with gathered_write_back(utc_now):
        return each_record(event, record_handler)
