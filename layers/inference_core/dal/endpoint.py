"""SageMaker Runtime access: one InvokeEndpointAsync per batch."""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.clients import client
from inference_core.errors import PermanentDependencyError, TransientError
from inference_core.settings import get_settings

# Codes after which the same request may succeed later; anything else is a configuration problem.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
        "ModelNotReadyError",
    }
)


class AsyncEndpoint:
    def __init__(self, endpoint_name: str, request_ttl_seconds: int, invocation_timeout_seconds: int) -> None:
        self.endpoint_name = endpoint_name
        self.request_ttl_seconds = request_ttl_seconds
        self.invocation_timeout_seconds = invocation_timeout_seconds

    def invoke(self, input_location: str, inference_id: str) -> str:
        """Queue one asynchronous invocation; returns the output location SageMaker will write."""
        runtime: Any = client("sagemaker-runtime")
        try:
            response = runtime.invoke_endpoint_async(
                EndpointName=self.endpoint_name,
                InputLocation=input_location,
                InferenceId=inference_id,
                ContentType="application/jsonlines",
                Accept="application/jsonlines",
                RequestTTLSeconds=self.request_ttl_seconds,
                InvocationTimeoutSeconds=self.invocation_timeout_seconds,
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            details = {"aws_error": error.get("Code"), "reason": error.get("Message")}
            if error.get("Code") in _TRANSIENT_CODES or status == 429 or status >= 500:
                raise TransientError("the endpoint is busy or unavailable", details) from exc
            raise PermanentDependencyError("the endpoint refused the batch", details) from exc
        except BotoCoreError as exc:
            raise TransientError("the endpoint could not be reached", {"reason": str(exc)}) from exc
        output_location: str = response.get("OutputLocation", "")
        return output_location


@cache
def async_endpoint() -> AsyncEndpoint:
    settings = get_settings()
    return AsyncEndpoint(settings.endpoint_name, settings.request_ttl_seconds, settings.invocation_timeout_seconds)
