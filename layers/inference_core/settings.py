"""Typed settings, read once from the environment that template.yaml (or the local stack) sets."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    table_name: str = "predictions"
    bucket_name: str = "inference-data"
    request_queue_url: str = ""
    endpoint_name: str = "embeddings"
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # The one place that knows about local endpoints (moto server, local SageMaker).
    aws_endpoint_url: str | None = None
    sagemaker_runtime_endpoint_url: str | None = None

    # Prefixes in the project bucket; the endpoint's S3 output paths are set in template.yaml to match.
    batch_input_prefix: str = "batches/input/"
    result_prefix: str = "results/"

    # Delivery: must equal the redrive policy's maxReceiveCount so the last attempt can mark the prediction failed.
    max_receive_count: int = 5
    # A queued prediction not dispatched within this many seconds ends `expired`.
    prediction_ttl_seconds: int = 3600
    # Status records are deleted by DynamoDB TTL this long after creation.
    record_retention_days: int = 30
    invocation_timeout_seconds: int = 900
    request_ttl_seconds: int = 3600

    # Outputs above this size are stored in S3 and returned as a presigned URL (DynamoDB items stop at 400 KB).
    inline_output_max_bytes: int = 256_000
    presigned_url_seconds: int = 900
    api_key_cache_seconds: float = 30.0


@cache
def get_settings() -> Settings:
    return Settings()
