"""Python client for the inference API (v1): `Client`, `AsyncClient`, typed models and errors.

from inference_client import Client

with Client() as client:  # INFERENCE_API_URL and INFERENCE_API_KEY, or Client(api_url, api_key)
    vectors = client.embed(["A cat sleeps on the sofa.", "A kitten naps on the couch."])
"""

from __future__ import annotations

from inference_client._version import __version__
from inference_client.async_client import AsyncClient, AsyncPredictions
from inference_client.breaker import CircuitBreaker
from inference_client.client import Client, Predictions, ProgressCallback
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
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PredictionError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from inference_client.models import (
    EmbeddingBatch,
    EmbeddingOutput,
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

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncClient",
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
    "WaitTimeoutError",
    "__version__",
]
