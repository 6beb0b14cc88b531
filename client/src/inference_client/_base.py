"""What `Client` and `AsyncClient` are made of, written once: configuration, headers, request bodies, and
`BaseClient`, whose operations (see `_operations`) are the request loop (retries, circuit breaker, observers, logs),
polling, and `embed`. The two clients only add the driver that does the I/O."""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from inference_client._operations import (
    Emit,
    Gather,
    Handle,
    Operation,
    Pause,
    Send,
    Spawn,
    Stream,
    WaitFirst,
    operation,
    stream,
)
from inference_client._version import __version__
from inference_client.breaker import CircuitBreaker
from inference_client.chunking import Chunk, check_text, encode_json, iter_chunks
from inference_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    CircuitOpenError,
    ConfigurationError,
    InvalidInputError,
    PredictionError,
    ResponseFormatError,
    WaitTimeoutError,
)
from inference_client.models import EmbeddingBatch, EmbeddingOutput, Job, Prediction, PredictionStatus
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
from inference_client.ratelimit import TokenBucket
from inference_client.retry import Failure, RetryPolicy, classify_exception, classify_response

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

ProgressCallback = Callable[[int, int | None], None]
"""progress(done, total): texts embedded so far, and how many in all (None when not known)."""
UploadProgressCallback = Callable[[int, int], None]
"""progress(bytes_sent, total): how much of a job's file is uploaded (from 0 again if the upload is retried)."""
JobProgressCallback = Callable[[Job], None]
"""progress(job): the job as first seen and after every poll (its `request_counts` and `progress` move)."""


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


def given(**fields: Any) -> dict[str, Any]:
    """The fields that are not None, in order: a query string, or a request body without its unset options."""
    return {name: value for name, value in fields.items() if value is not None}


def create_body(
    inputs: str | Sequence[str],
    parameters: Mapping[str, Any] | None,
    metadata: Mapping[str, str] | None,
    webhook: str | None,
) -> bytes:
    body = given(
        inputs=inputs if isinstance(inputs, str) else list(inputs),
        parameters=None if parameters is None else dict(parameters),
        metadata=None if metadata is None else dict(metadata),
        webhook=webhook,
    )
    try:
        return encode_json(body)
    except UnicodeEncodeError as exc:
        raise InvalidInputError("an input is not valid Unicode (lone surrogate)") from exc


def job_body(metadata: Mapping[str, str] | None, webhook: str | None, dry_run: bool) -> bytes:
    return encode_json(
        given(metadata=None if metadata is None else dict(metadata), webhook=webhook, dry_run=True if dry_run else None)
    )


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


def partial_path(path: Path) -> Path:
    """Where a download is written until it is complete: an interrupted one never looks like a finished file."""
    return path.with_name(f"{path.name}.part")


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


RecordT = TypeVar("RecordT", Prediction, Job)  # what `_poll` waits on


class BaseClient:
    """Everything `Client` and `AsyncClient` share; each adds `_io`, the driver of its operations."""

    _io: Any

    def __init__(
        self,
        api_url: str | None,
        api_key: str | None,
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

    # -- embeddings ------------------------------------------------------------------------------------------------

    @operation
    def embed(
        self,
        texts: Sequence[str],
        *,
        concurrency: int = 4,
        rate_limit: float | None = None,
        progress: ProgressCallback | None = None,
        normalize: bool = True,
        cache: bool = True,
        timeout: float | None = None,
    ) -> Operation[list[list[float]]]:
        """One embedding per text, in input order, for any number of texts.

        The texts are checked first (nothing is sent if one is empty, over 8,192 characters or not valid Unicode),
        split into requests of at most 256 inputs and under 200 KiB of JSON, and sent at most `concurrency` at a
        time and at most `rate_limit` requests per second (every request counts: submissions, polls, retries).
        `timeout` bounds the wait for each request's prediction (None: until it finishes, fails or expires).
        `cache=False` bypasses the server's result cache (nothing read from it or written to it)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        for index, text in enumerate(texts):
            check_text(text, index)
        batches: list[EmbeddingBatch] = yield Gather(
            BaseClient.embed_batches(
                self,
                texts,
                concurrency=concurrency,
                rate_limit=rate_limit,
                progress=progress,
                normalize=normalize,
                cache=cache,
                timeout=timeout,
            )
        )
        return [embedding for batch in batches for embedding in batch.embeddings]

    @stream
    def embed_batches(
        self,
        texts: Iterable[str],
        *,
        concurrency: int = 4,
        rate_limit: float | None = None,
        progress: ProgressCallback | None = None,
        normalize: bool = True,
        cache: bool = True,
        timeout: float | None = None,
        total: int | None = None,
    ) -> Stream[EmbeddingBatch]:
        """Like `embed`, but yields each request's embeddings as an `EmbeddingBatch`, in input order, as soon as
        it and every batch before it are done. Reads `texts` lazily (any iterable), so memory stays bounded. With
        `AsyncClient`, close the generator (`aclose()`) if you stop reading early."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if total is None and isinstance(texts, Sized):
            total = len(texts)
        parameters: dict[str, Any] = {"normalize": normalize, "encoding_format": "base64"}
        if not cache:
            parameters["cache"] = False  # sent only when set, so servers without a result cache accept the body
        chunks = iter_chunks(texts, {"parameters": parameters})
        limiter = TokenBucket(rate_limit, clock=self._clock) if rate_limit else None
        window = 2 * concurrency  # chunks submitted but not yet yielded: bounds memory when the head is slow
        pending: deque[Handle[EmbeddingBatch]] = deque()
        reported: set[Handle[EmbeddingBatch]] = set()
        done = 0
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                else:
                    pending.append((yield Spawn(self._embed_chunk(chunk, limiter, timeout), concurrency)))
            if not pending:
                return
            waiting = [handle for handle in pending if handle not in reported]
            if waiting:
                completed: set[Handle[EmbeddingBatch]] = yield WaitFirst(waiting)
                for handle in completed:
                    batch = handle.result()  # the first failure ends the whole call
                    reported.add(handle)
                    done += len(batch.embeddings)
                    if progress is not None:
                        progress(done, total)
            while pending and pending[0] in reported:
                handle = pending.popleft()
                reported.discard(handle)
                yield Emit(handle.result())

    def _embed_chunk(
        self, chunk: Chunk, limiter: TokenBucket | None, timeout: float | None
    ) -> Operation[EmbeddingBatch]:
        key = new_idempotency_key()
        response = yield from self._send(
            "POST", "/v1/predictions", body=chunk.body, idempotency_key=key, wait=20, limiter=limiter
        )
        prediction = Prediction.from_api(parse_json(response))
        prediction = yield from self._wait(prediction, timeout=timeout, limiter=limiter)
        if prediction.status != PredictionStatus.SUCCEEDED:
            raise PredictionError(prediction)
        prediction = yield from self._with_output(prediction, limiter=limiter)
        output = check_output(prediction.output, len(chunk.texts), prediction.id)
        return EmbeddingBatch(chunk.start, output.embeddings, output.truncated, prediction.id)

    # -- the request loop ------------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        idempotency_key: str | None = None,
        wait: int | None = None,
        limiter: TokenBucket | None = None,
        external_url: str | None = None,
        external_label: str = OUTPUT_URL_LABEL,
        external_headers: Mapping[str, str] | None = None,
        content: Callable[[], Generator[bytes, None, None]] | None = None,
        download_to: Path | None = None,
    ) -> Operation[httpx.Response]:
        """One logical request: retried on retryable failures (same headers, same Idempotency-Key, same body).

        `external_url`: a presigned link instead of an API path (no API key, no circuit breaker: it is not the
        API). `content`: makes a fresh streamed body for each attempt. `download_to`: a successful response's body
        is streamed into this file (each attempt starts it over) rather than read into memory."""
        if external_url is not None:
            url, label, use_breaker = external_url, external_label, False
            headers = self._external_headers(external_headers)
        else:
            headers = self._headers(idempotency_key=idempotency_key, wait=wait, body=body is not None)
            url, label, use_breaker = self._url(path), path, True
        timeout = self._timeout_for(wait)
        attempt = 0
        last: tuple[Failure, httpx.Response | None, httpx.TransportError | None] | None = None
        while True:
            attempt += 1
            yield Pause(limiter.reserve() if limiter is not None else 0.0)
            try:
                probe = self._acquire_breaker(method, label, use_breaker)
            except CircuitOpenError as circuit:
                if last is None:
                    raise
                # The breaker opened during this call's retries: report the failure that opened it.
                raise self._final_error(label, *last, attempt - 1, breaker_open=True) from circuit
            started = self._clock()
            response: httpx.Response | None = None
            error: httpx.TransportError | None = None
            failure: Failure | None
            upload = content() if content is not None else None
            try:
                sent: httpx.Response = yield Send(method, url, headers, timeout, params, body, upload, download_to)
                response, failure = sent, classify_response(sent)
            except httpx.TransportError as exc:
                error, failure = exc, classify_exception(exc)
            except BaseException:
                self.breaker.release(probe)
                raise
            finally:
                if upload is not None:
                    upload.close()  # closes the file an interrupted upload was reading
            self._attempt_done(method, label, attempt, started, response, failure, probe, use_breaker)
            if failure is None:
                assert response is not None
                return response
            last = (failure, response, error)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise self._final_error(label, failure, response, error, attempt) from error
            yield Pause(self._retry_delay(method, label, attempt, failure))

    def _json(self, method: str, path: str, **options: Any) -> Operation[Any]:
        """The JSON answer of one logical request (`options` as for `_send`)."""
        response = yield from self._send(method, path, **options)
        return parse_json(response)

    def _get(self, prediction_id: str, limiter: TokenBucket | None = None) -> Operation[Prediction]:
        data = yield from self._json("GET", f"/v1/predictions/{prediction_id}", limiter=limiter)
        return Prediction.from_api(data)

    def _wait(
        self, prediction: Prediction, *, timeout: float | None, limiter: TokenBucket | None = None
    ) -> Operation[Prediction]:
        return (yield from self._poll(prediction, lambda prediction_id: self._get(prediction_id, limiter), timeout))

    def _poll(
        self,
        current: RecordT,
        read: Callable[[str], Operation[RecordT]],
        timeout: float | None,
        *,
        kind: str = "prediction",
        progress: Callable[[RecordT], None] | None = None,
    ) -> Operation[RecordT]:
        """Polls with backoff (0.5 s doubling to 5 s) until `current` is terminal, reporting it as first seen and
        after every poll. WaitTimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else self._clock() + timeout
        delay = POLL_INITIAL_DELAY
        if progress is not None:
            progress(current)
        while not current.is_terminal:
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(current.id, current.status.value, timeout or 0.0, kind=kind)
            yield Pause(delay if remaining is None else min(delay, remaining))
            current = yield from read(current.id)
            if progress is not None:
                progress(current)
            delay = min(delay * 2, POLL_MAX_DELAY)
        return current

    def _with_output(self, prediction: Prediction, *, limiter: TokenBucket | None = None) -> Operation[Prediction]:
        """A succeeded prediction whose output is behind `output_url`, with the output read from the link (a link
        that expired in the meantime is refreshed once by reading the prediction again)."""
        for fresh in (False, True):
            if prediction.output is not None or not prediction.output_url:
                return prediction
            try:
                output = yield from self._json("GET", "", external_url=prediction.output_url)
            except APIError as exc:
                if fresh or exc.status_code not in (400, 403, 404):
                    raise
                prediction = yield from self._get(prediction.id, limiter)
                continue
            return prediction.with_output(output)
        return prediction

    def _download(self, url: str, label: str, path: Path) -> Operation[None]:
        """Streams a presigned file into `path`, through `<path>.part` so that an interrupted download never looks
        like a finished file. An APIError (such as an expired link) is left to the caller."""
        part = partial_path(path)
        try:
            response = yield from self._send("GET", "", external_url=url, external_label=label, download_to=part)
            if not response.is_success:  # a redirect (never followed): not the file
                raise ResponseFormatError(f"{link_name(label)} answered HTTP {response.status_code}, not the file")
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)

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
