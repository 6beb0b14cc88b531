"""Scheduled (EventBridge) sweep: finishes predictions and job chunks whose notification was lost, expires what
outlived its window, and keeps bulk chunks flowing."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from inference_core.logic.job_sweep import sweep_jobs
from inference_core.logic.sweeper import sweep
from inference_core.observability import logger, metrics


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    predictions = sweep()
    jobs = sweep_jobs()
    return {**predictions.__dict__, "jobs": {**jobs.__dict__}}
