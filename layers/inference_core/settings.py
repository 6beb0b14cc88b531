"""Typed settings, read once from the environment that template.yaml (or the local stack) sets.

Every name the code uses (table, bucket, queue, endpoint, prefixes, index) comes from the template: those fields
have no default, so a missing variable fails at the first call with its name. A frozen dataclass converted by
field type does this without pydantic-settings, whose import alone costs more than the rest of a handler's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import get_type_hints

from inference_core.errors import ConfigurationError


# No generated __eq__ or __repr__: about half of building this 80-field class on every cold start, and neither is
# used (one instance per process; a repr would put every value in a log line).
@dataclass(frozen=True, eq=False, repr=False)
class Settings:
    # Names: Globals.Function.Environment in template.yaml.
    table_name: str
    tenant_index_name: str
    open_index_name: str
    bucket_name: str
    batch_input_prefix: str
    batch_output_prefix: str
    batch_failure_prefix: str
    result_prefix: str
    job_upload_prefix: str
    inbox_prefix: str
    outbox_prefix: str
    job_work_prefix: str
    file_prefix: str
    request_queue_url: str
    # Predictions past their tenant's interactive share wait here (the backlog lane).
    backlog_queue_url: str
    request_dlq_url: str
    job_intake_queue_url: str
    webhook_queue_url: str
    # Ports webhook URLs may use besides 443 (comma-separated), from the template's allow list.
    webhook_allowed_ports: str
    endpoint_name: str
    aws_region: str

    # Delivery: must equal the redrive policy's maxReceiveCount so the last attempt can mark the prediction failed.
    max_receive_count: int
    # A queued prediction not dispatched within this many seconds ends `expired`.
    prediction_ttl_seconds: int
    # Status records are deleted by DynamoDB TTL this long after creation.
    record_retention_days: int
    invocation_timeout_seconds: int
    request_ttl_seconds: int
    # The dispatcher function's timeout: a `running` mark younger than this may still be handed back.
    dispatch_timeout_seconds: int
    # A running prediction is swept this long after its invocation timeout has passed.
    sweep_margin_seconds: int

    # Bulk jobs: chunk size, the most bulk chunks in flight at the endpoint (the gate follows the instances in
    # service below this), and how long a job may run.
    job_chunk_max_inputs: int
    job_max_in_flight_chunks: int
    job_completion_window_hours: int
    # Per-tenant limits' defaults (an operator overrides them per tenant with `set-limits`).
    tenant_requests_per_minute: int
    tenant_inputs_per_minute: int
    tenant_open_jobs: int
    tenant_interactive_inputs_per_minute: int
    tenant_queued_inputs: int
    # The endpoint's concurrent invocations per instance: bulk may take all but one of them on each instance.
    max_concurrent_invocations_per_instance: int
    # What a dry run's estimate assumes: the endpoint's measured items/s per instance and its hourly price.
    endpoint_items_per_second: float
    instance_price_per_hour: float

    # Result cache: who shares entries (tenant | shared | off), how long they live, and the model identity every
    # key includes (a new model, image or revision never serves an old vector).
    result_cache_table_name: str
    result_cache_scope: str
    result_cache_ttl_hours: int
    model_revision: str

    # The one place that knows about local endpoints (moto server, local SageMaker); unset in AWS.
    aws_endpoint_url: str | None = None
    sagemaker_runtime_endpoint_url: str | None = None

    # Tunables of the code itself, not names: the template does not set them.
    # Outputs above this size get an object of their own and are returned as a presigned URL: a Lambda response
    # stops at 6 MB, and base64 or JSON re-encoding must fit under it. Smaller ones are read from the batch output.
    inline_output_max_bytes: int = 4_000_000
    presigned_url_seconds: int = 900
    api_key_cache_seconds: float = 30.0
    job_chunk_max_bytes: int = 4 * 1024 * 1024
    job_max_lines: int = 1_000_000
    job_max_file_bytes: int = 1024**3
    job_upload_url_seconds: int = 3600
    # A file through POST /v1/files: API Gateway hands Lambda at most 6 MB, base64-encoded for a multipart body.
    file_max_bytes: int = 4 * 1024 * 1024
    # A backlog-lane dispatcher holds its lane place until its batch's output (or failure) is written, this long
    # at most (under the dispatcher's 60 s timeout); past it the place is let go and the batch finishes as usual.
    backlog_wait_seconds: float = 40.0
    backlog_poll_seconds: float = 0.25
    # How long a read of the endpoint's instances in service is used before it is read again.
    endpoint_capacity_seconds: float = 30.0
    # Only the local stack sets this: plain-http webhook receivers on loopback (the template never does; a test
    # checks).
    allow_loopback_webhooks: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if environ is None else environ
        types = get_type_hints(cls)
        values: dict[str, object] = {}
        missing: list[str] = []
        invalid: list[str] = []
        for field in dataclasses.fields(cls):
            variable = field.name.upper()
            if variable not in source:
                if field.default is dataclasses.MISSING:
                    missing.append(variable)
                continue
            kind = types[field.name]
            try:
                values[field.name] = (
                    _boolean(source[variable])
                    if kind is bool
                    else int(source[variable])
                    if kind is int
                    else float(source[variable])
                    if kind is float
                    else source[variable]
                )
            except ValueError:
                invalid.append(f"{variable} (expected {kind.__name__})")
        if missing:
            raise ConfigurationError(
                f"missing environment variable(s) {', '.join(missing)}: template.yaml sets them for every function"
            )
        if invalid:
            raise ConfigurationError(f"invalid environment variable(s) {', '.join(invalid)}")
        return cls(**values)  # type: ignore[arg-type]


def _boolean(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes"):
        return True
    if value.strip().lower() in ("0", "false", "no", ""):
        return False
    raise ValueError(value)


@cache
def get_settings() -> Settings:
    return Settings.from_environ()
