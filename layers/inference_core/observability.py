"""The one place that creates the Logger and Metrics; everything else imports them from here.

No tracer: the X-Ray SDK (Powertools' Tracer) costs about half a bare `import boto3` on every cold start, and
patches every HTTP library it finds. Functions keep `Tracing: Active` in template.yaml, so X-Ray still records
each invocation, its cold start and its duration; per-call spans can come from the AWS OpenTelemetry Lambda layer
without code changes. Nothing here records payloads or responses (see docs/architecture.md).
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE (template Globals).
logger = Logger()
metrics = Metrics()

__all__ = ["MetricUnit", "logger", "metrics", "single_metric"]
