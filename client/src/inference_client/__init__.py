"""Python client for the inference API (v1): `Client`, `AsyncClient`, typed models and errors.

from inference_client import Client

with Client() as client:  # INFERENCE_API_URL and INFERENCE_API_KEY, or Client(api_url, api_key)
    vectors = client.embed(["A cat sleeps on the sofa.", "A kitten naps on the couch."])
    job = client.jobs.wait(client.jobs.create("texts.jsonl"))  # a bulk job over a JSONL file
    client.jobs.download(job, output="texts.output.jsonl", errors="texts.errors.jsonl")

payload = verify_webhook(request_headers, request_body, "whsec_...")  # a Standard Webhooks receiver

Prometheus metrics: `inference_client.prometheus.PrometheusObserver` (the `prometheus` extra).
"""

from __future__ import annotations

from inference_client._version import __version__
from inference_client.async_client import AsyncClient, AsyncJobs, AsyncPredictions
from inference_client.breaker import CircuitBreaker
from inference_client.client import (
    Client,
    JobProgressCallback,
    Jobs,
    Predictions,
    ProgressCallback,
    UploadProgressCallback,
)
from inference_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    IdempotencyConflictError,
    InferenceError,
    InvalidInputError,
    JobError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PredictionError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    UnprocessableEntityError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from inference_client.models import (
    EmbeddingBatch,
    EmbeddingOutput,
    Job,
    JobDownload,
    JobEstimate,
    JobLineError,
    JobPage,
    JobProgress,
    JobRequestCounts,
    JobSource,
    JobStatus,
    JobUpload,
    Prediction,
    PredictionErrorInfo,
    PredictionMetrics,
    PredictionPage,
    PredictionStatus,
)
from inference_client.observability import (
    BreakerEvent,
    BreakerState,
    ClientMetrics,
    Observer,
    RejectedEvent,
    RequestEvent,
    RetryEvent,
)
from inference_client.ratelimit import AsyncRateLimiter, RateLimiter
from inference_client.retry import RetryPolicy
from inference_client.webhooks import sign_webhook, verify_webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncJobs",
    "AsyncPredictions",
    "AsyncRateLimiter",
    "AuthenticationError",
    "BadRequestError",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Client",
    "ClientMetrics",
    "ConfigurationError",
    "ConflictError",
    "EmbeddingBatch",
    "EmbeddingOutput",
    "IdempotencyConflictError",
    "InferenceError",
    "InvalidInputError",
    "Job",
    "JobDownload",
    "JobError",
    "JobEstimate",
    "JobLineError",
    "JobPage",
    "JobProgress",
    "JobProgressCallback",
    "JobRequestCounts",
    "JobSource",
    "JobStatus",
    "JobUpload",
    "Jobs",
    "NotFoundError",
    "Observer",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Prediction",
    "PredictionError",
    "PredictionErrorInfo",
    "PredictionMetrics",
    "PredictionPage",
    "PredictionStatus",
    "Predictions",
    "ProgressCallback",
    "RateLimitError",
    "RateLimiter",
    "RejectedEvent",
    "RequestEvent",
    "ResponseFormatError",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "UnprocessableEntityError",
    "UploadProgressCallback",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "__version__",
    "sign_webhook",
    "verify_webhook",
]
