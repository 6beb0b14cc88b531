"""Lambda entry point for the API: API Gateway HTTP API event -> Mangum -> FastAPI."""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from inference_api.app import create_app
from inference_core.observability import logger, metrics

_asgi = Mangum(create_app(), lifespan="off")


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Mangum declares its own LambdaContext protocol; the runtime object satisfies both.
    response: dict[str, Any] = _asgi(event, cast(Any, context))
    return response
