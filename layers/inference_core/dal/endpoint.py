"""SageMaker access: one InvokeEndpointAsync per batch, and the endpoint's instances in service."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory, sagemaker, sagemaker_runtime
from inference_core.dal.objects import batch_output_key
from inference_core.settings import get_settings


class AsyncEndpoint:
    def __init__(self, endpoint_name: str, request_ttl_seconds: int, invocation_timeout_seconds: int) -> None:
        self.endpoint_name = endpoint_name
        self.request_ttl_seconds = request_ttl_seconds
        self.invocation_timeout_seconds = invocation_timeout_seconds

    def invoke(self, input_location: str, inference_id: str, bulk: bool = False) -> str:
        """Queue one asynchronous invocation; returns the output location SageMaker will write. `bulk` marks a job
        chunk, which the model container runs after any interactive batch, slice by slice."""
        extra = {"CustomAttributes": "priority=bulk"} if bulk else {}
        try:
            response = sagemaker_runtime().invoke_endpoint_async(
                EndpointName=self.endpoint_name,
                InputLocation=input_location,
                InferenceId=inference_id,
                # A known output name lets the sweeper find the output when the notification is lost.
                Filename=batch_output_key(inference_id).rsplit("/", 1)[-1],
                ContentType="application/jsonlines",
                Accept="application/jsonlines",
                RequestTTLSeconds=self.request_ttl_seconds,
                InvocationTimeoutSeconds=self.invocation_timeout_seconds,
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "the endpoint did not take the batch") from exc
        return response.get("OutputLocation", "")

    def instances_in_service(self) -> int:
        """Instances serving the endpoint now (every production variant's CurrentInstanceCount)."""
        try:
            response = sagemaker().describe_endpoint(EndpointName=self.endpoint_name)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the endpoint's instances") from exc
        variants = response.get("ProductionVariants") or []
        return sum(int(variant.get("CurrentInstanceCount") or 0) for variant in variants)


@cached_factory
def async_endpoint() -> AsyncEndpoint:
    settings = get_settings()
    return AsyncEndpoint(settings.endpoint_name, settings.request_ttl_seconds, settings.invocation_timeout_seconds)
