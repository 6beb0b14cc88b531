"""What `Client` and `AsyncClient` share: configuration, headers, request bodies, and the bookkeeping around each
attempt (circuit breaker, observers, logs, the error to raise when retries run out)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from inference_client._version import __version__
from inference_client.breaker import CircuitBreaker
from inference_client.chunking import encode_json
from inference_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    CircuitOpenError,
    ConfigurationError,
    InvalidInputError,
    JobError,
    ResponseFormatError,
)
from inference_client.models import EmbeddingOutput, Job
from inference_client.observability import (
    BreakerEvent,
    BreakerState,
    ClientMetrics,
    Observer,
    RejectedEvent,
    RequestEvent,
    RetryEvent,
    _Fanout,
    logger,
)
from inference_client.retry import Failure, RetryPolicy

API_URL_ENV = "INFERENCE_API_URL"
API_KEY_ENV = "INFERENCE_API_KEY"
MAX_WAIT_SECONDS = 20
# What logs, events and errors say instead of a presigned link (it holds a signature).
OUTPUT_URL_LABEL = "<output_url>"
UPLOAD_URL_LABEL = "<upload_url>"
ERROR_URL_LABEL = "<error_url>"
POLL_INITIAL_DELAY = 0.5
POLL_MAX_DELAY = 5.0
DEFAULT_TIMEOUT = 30.0


def resolve_config(api_url: str | None, api_key: str | None) -> tuple[str, str]:
    """The API URL and key from the arguments, else from INFERENCE_API_URL and INFERENCE_API_KEY."""
    url = (api_url or os.environ.get(API_URL_ENV) or "").strip()
    key = (api_key or os.environ.get(API_KEY_ENV) or "").strip()
    if not url:
        raise ConfigurationError(f"no API URL: pass api_url= or set {API_URL_ENV}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"the API URL must be http(s)://host[:port][/prefix], not {url!r}")
    if not key:
        raise ConfigurationError(f"no API key: pass api_key= or set {API_KEY_ENV}")
    return url.rstrip("/"), key


def new_idempotency_key() -> str:
    """One per logical call, reused by each of its retries (printable ASCII, as the API requires)."""
    return f"ic-{uuid.uuid4().hex}"


def create_body(
    inputs: str | Sequence[str],
    parameters: Mapping[str, Any] | None,
    metadata: Mapping[str, str] | None,
    webhook: str | None,
) -> bytes:
    body: dict[str, Any] = {"inputs": inputs if isinstance(inputs, str) else list(inputs)}
    if parameters is not None:
        body["parameters"] = dict(parameters)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if webhook is not None:
        body["webhook"] = webhook
    try:
        return encode_json(body)
    except UnicodeEncodeError as exc:
        raise InvalidInputError("an input is not valid Unicode (lone surrogate)") from exc


def job_body(metadata: Mapping[str, str] | None, webhook: str | None, dry_run: bool) -> bytes:
    body: dict[str, Any] = {}
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if webhook is not None:
        body["webhook"] = webhook
    if dry_run:
        body["dry_run"] = True
    return encode_json(body)


UPLOAD_BLOCK_BYTES = 1024 * 1024
"""Files are read for upload, and written on download, in blocks of this size: memory stays bounded for any size,
and a block of local disk I/O takes far less time than sending it (the async client does it inline)."""


def upload_size(path: Path) -> int:
    """The size of a job file to upload; OSError if it cannot be read. An empty file is refused before anything is
    sent (the API would create a job only to fail it)."""
    with path.open("rb"):  # readable, and not a directory
        pass
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{path} is empty: a job file needs at least one line")
    return size


def read_blocks(path: Path, size: int, progress: Callable[[int, int], None] | None) -> Generator[bytes, None, None]:
    """The first `size` bytes of the file, block by block, reporting `progress(bytes_sent, size)` as each block is
    taken by the transport. Each attempt of an upload reads the file again from the start."""
    sent = 0
    if progress is not None:
        progress(0, size)
    with path.open("rb") as handle:
        while sent < size:
            block = handle.read(min(UPLOAD_BLOCK_BYTES, size - sent))
            if not block:
                return  # the file shrank: the transport sees fewer bytes than Content-Length and fails the attempt
            sent += len(block)
            yield block
            if progress is not None:
                progress(sent, size)


EXPIRED_LINK_STATUSES = (400, 403)
"""What S3 answers for a presigned link past its expiry (403 AccessDenied; 400 for some signature errors)."""


def partial_path(path: Path) -> Path:
    """Where a download is written until it is complete: an interrupted one never looks like a finished file."""
    return path.with_name(f"{path.name}.part")


def job_id_of(job: str | Job) -> str:
    return job if isinstance(job, str) else job.id


def job_file_url(job: Job, kind: str) -> tuple[str | None, str]:
    """The presigned link of the job's `output` or `errors` file, and its label for logs and errors."""
    if kind == "output":
        return job.output_url, OUTPUT_URL_LABEL
    return job.error_url, ERROR_URL_LABEL


def not_finished(job: Job) -> JobError:
    return JobError(job, f"job {job.id} is {job.status.value}: its result files are not written yet (wait for it)")


def wait_header(wait: float | None) -> int | None:
    if wait is None or wait <= 0:
        return None
    return min(MAX_WAIT_SECONDS, max(1, round(wait)))


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ResponseFormatError(f"the API answered HTTP {response.status_code} with a body that is not JSON") from exc


def check_output(output: EmbeddingOutput | None, expected: int, prediction_id: str) -> EmbeddingOutput:
    if output is None:
        raise ResponseFormatError(f"prediction {prediction_id} succeeded without an output")
    if len(output.embeddings) != expected:
        raise ResponseFormatError(
            f"prediction {prediction_id} returned {len(output.embeddings)} embeddings for {expected} inputs"
        )
    return output


def link_name(label: str) -> str:
    """`<upload_url>` -> "the upload link": how an error names a presigned link without showing it."""
    return f"the {label.strip('<>').removesuffix('_url')} link"


class BaseClient:
    def __init__(
        self,
        api_url: str | None,
        api_key: str | None,
        *,
        timeout: float,
        retry: RetryPolicy | None,
        breaker: CircuitBreaker | None,
        observers: Sequence[Observer],
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self.api_url, self._api_key = resolve_config(api_url, api_key)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._random = random
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self.metrics = ClientMetrics()
        self._events = _Fanout([self.metrics, *observers])
        self.breaker.add_listener(self._on_breaker_change)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r})"  # never the key

    # -- request pieces ------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.api_url + path

    def _headers(
        self, *, idempotency_key: str | None = None, wait: int | None = None, body: bool = False
    ) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": f"inference-client/{__version__} httpx/{httpx.__version__}",
        }
        if body:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if wait:
            headers["Prefer"] = f"wait={wait}"
        return headers

    def _timeout_for(self, wait: int | None) -> httpx.Timeout:
        """`Prefer: wait=N` holds the reply up to N seconds: the read timeout covers that on top of the usual."""
        return httpx.Timeout(self.timeout + (wait or 0), connect=min(self.timeout, 10.0))

    @staticmethod
    def _external_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """For a presigned link: no Authorization (the link carries its own signature), plus the headers the link
        was signed with (an upload's Content-Type)."""
        return {"User-Agent": f"inference-client/{__version__} httpx/{httpx.__version__}", **(extra or {})}

    # -- bookkeeping around attempts ------------------------------------------------------------------------------

    def _acquire_breaker(self, method: str, label: str, use_breaker: bool) -> bool:
        if not use_breaker:
            return False
        try:
            return self.breaker.acquire()
        except CircuitOpenError as exc:
            self._events.rejected(RejectedEvent(method, label, exc.retry_after))
            logger.warning(
                "circuit breaker open: failing fast",
                extra={"method": method, "path": label, "retry_after": exc.retry_after},
            )
            raise

    def _attempt_done(
        self,
        method: str,
        label: str,
        attempt: int,
        started: float,
        response: httpx.Response | None,
        failure: Failure | None,
        probe: bool,
        use_breaker: bool,
    ) -> None:
        latency = self._clock() - started
        if use_breaker:
            if failure is not None and failure.breaker_failure:
                self.breaker.record_failure(probe)
            else:
                self.breaker.record_success(probe)
        status = response.status_code if response is not None else None
        error = failure.reason if failure is not None and response is None else None
        self._events.request(RequestEvent(method, label, attempt, status, latency, error))
        logger.debug(
            "%s %s -> %s in %.0f ms (attempt %d)",
            method,
            label,
            status if status is not None else error,
            latency * 1000,
            attempt,
            extra={"method": method, "path": label, "status": status, "attempt": attempt, "latency_s": latency},
        )

    def _retry_delay(self, method: str, label: str, attempt: int, failure: Failure) -> float:
        delay = self.retry.delay(attempt, failure.retry_after, self._random)
        self._events.retry(RetryEvent(method, label, attempt, delay, failure.reason))
        logger.info(
            "retrying %s %s after %s in %.2fs (attempt %d of %d)",
            method,
            label,
            failure.reason,
            delay,
            attempt + 1,
            self.retry.max_attempts,
            extra={"method": method, "path": label, "reason": failure.reason, "attempt": attempt, "delay_s": delay},
        )
        return delay

    def _final_error(
        self,
        label: str,
        failure: Failure,
        response: httpx.Response | None,
        exc: httpx.TransportError | None,
        attempts: int,
        *,
        breaker_open: bool = False,
    ) -> Exception:
        """The exception for a call whose last attempt failed (retries run out, or the breaker opened meanwhile)."""
        if response is not None:
            return APIError.from_response(response, attempts=attempts)
        where = link_name(label) if label.startswith("<") else urlsplit(self.api_url).netloc
        notes = [f"after {attempts} attempts"] if attempts > 1 else []
        if breaker_open:
            notes.append("the circuit breaker is now open")
        tries = f" ({'; '.join(notes)})" if notes else ""
        detail = str(exc) or failure.reason
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"timed out talking to {where}: {detail}{tries}", attempts=attempts)
        return APIConnectionError(f"could not reach {where}: {detail}{tries}", attempts=attempts)

    def _on_breaker_change(self, event: BreakerEvent) -> None:
        log = logger.warning if event.state == BreakerState.OPEN else logger.info
        log(
            "circuit breaker %s -> %s after %d consecutive failures",
            event.previous.value,
            event.state.value,
            event.consecutive_failures,
            extra={"breaker_state": event.state.value, "consecutive_failures": event.consecutive_failures},
        )
        self._events.breaker_change(event)


def webhook_secret_of(document: Any) -> str:
    """The `secret` of a /v1/webhooks/secret answer, checked to be in the whsec_ format."""
    secret = document.get("secret") if isinstance(document, dict) else None
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ResponseFormatError("the webhook secret is not in the whsec_ format")
    return secret
