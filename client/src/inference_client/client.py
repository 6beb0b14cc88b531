"""`Client`: the synchronous client (httpx.Client; `embed` runs its requests on a thread pool)."""

from __future__ import annotations

import builtins
import os
import random as _random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import httpx

from inference_client._base import (
    DEFAULT_TIMEOUT,
    EXPIRED_LINK_STATUSES,
    OUTPUT_URL_LABEL,
    POLL_INITIAL_DELAY,
    POLL_MAX_DELAY,
    UPLOAD_BLOCK_BYTES,
    UPLOAD_URL_LABEL,
    BaseClient,
    check_output,
    create_body,
    job_body,
    job_file_url,
    job_id_of,
    link_name,
    new_idempotency_key,
    not_finished,
    parse_json,
    partial_path,
    read_blocks,
    upload_size,
    wait_header,
    webhook_secret_of,
)
from inference_client.breaker import CircuitBreaker
from inference_client.chunking import Chunk, check_text, iter_chunks
from inference_client.errors import (
    APIError,
    CircuitOpenError,
    PredictionError,
    ResponseFormatError,
    WaitTimeoutError,
)
from inference_client.models import (
    EmbeddingBatch,
    Job,
    JobDownload,
    JobPage,
    Prediction,
    PredictionPage,
    PredictionStatus,
)
from inference_client.observability import Observer
from inference_client.ratelimit import RateLimiter
from inference_client.retry import Failure, RetryPolicy, classify_exception, classify_response

ProgressCallback = Callable[[int, int | None], None]
"""progress(done, total): texts embedded so far, and how many in all (None when not known)."""
UploadProgressCallback = Callable[[int, int], None]
"""progress(bytes_sent, total): how much of a job's file is uploaded (from 0 again if the upload is retried)."""
JobProgressCallback = Callable[[Job], None]
"""progress(job): the job as first seen and after every poll (its `request_counts` and `progress` move)."""


class _Stopped(Exception):
    """A worker noticed that its embed call is over (another chunk failed, or the caller stopped reading)."""


class Client(BaseClient):
    """Synchronous client. Use as a context manager, or call `close()`.

    >>> with Client() as client:  # INFERENCE_API_URL and INFERENCE_API_KEY
    ...     vectors = client.embed(["A cat sleeps on the sofa.", "A kitten naps on the couch."])
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        observers: Sequence[Observer] = (),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(
            api_url,
            api_key,
            timeout=timeout,
            retry=retry,
            breaker=breaker,
            observers=observers,
            clock=clock,
            random=random,
        )
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, follow_redirects=False)
        self.predictions = Predictions(self)
        self.jobs = Jobs(self)
        self.webhooks = Webhooks(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- embeddings ------------------------------------------------------------------------------------------------

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
    ) -> list[list[float]]:
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
        embeddings: list[list[float]] = []
        for batch in self.embed_batches(
            texts,
            concurrency=concurrency,
            rate_limit=rate_limit,
            progress=progress,
            normalize=normalize,
            cache=cache,
            timeout=timeout,
        ):
            embeddings.extend(batch.embeddings)
        return embeddings

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
    ) -> Iterator[EmbeddingBatch]:
        """Like `embed`, but yields each request's embeddings as an `EmbeddingBatch`, in input order, as soon as
        it and every batch before it are done. Reads `texts` lazily (any iterable), so memory stays bounded."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if total is None and isinstance(texts, Sized):
            total = len(texts)
        parameters: dict[str, Any] = {"normalize": normalize, "encoding_format": "base64"}
        if not cache:
            parameters["cache"] = False  # sent only when set, so servers without a result cache accept the body
        chunks = iter_chunks(texts, {"parameters": parameters})
        limiter = RateLimiter(rate_limit, clock=self._clock, sleep=self._sleep) if rate_limit else None
        stop = threading.Event()
        window = 2 * concurrency  # chunks submitted but not yet yielded: bounds memory when the head is slow
        pending: deque[tuple[Chunk, Future[EmbeddingBatch]]] = deque()
        reported: set[Future[EmbeddingBatch]] = set()
        done = 0
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="inference-embed")
        finished = False
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.append((chunk, pool.submit(self._embed_chunk, chunk, limiter, stop, timeout)))
                if not pending:
                    finished = True
                    return
                waiting = [future for _, future in pending if future not in reported]
                if waiting:
                    completed, _ = wait(waiting, return_when=FIRST_COMPLETED)
                    for future in completed:
                        future.result()  # the first failure ends the whole call
                        reported.add(future)
                        done += len(future.result().embeddings)
                        if progress is not None:
                            progress(done, total)
                while pending and pending[0][1] in reported:
                    _, future = pending.popleft()
                    reported.discard(future)
                    yield future.result()
        finally:
            stop.set()
            pool.shutdown(wait=finished, cancel_futures=True)

    def _embed_chunk(
        self, chunk: Chunk, limiter: RateLimiter | None, stop: threading.Event, timeout: float | None
    ) -> EmbeddingBatch:
        key = new_idempotency_key()
        response = self._send(
            "POST", "/v1/predictions", body=chunk.body, idempotency_key=key, wait=20, limiter=limiter, stop=stop
        )
        prediction = Prediction.from_api(parse_json(response))
        prediction = self._wait(prediction, timeout=timeout, limiter=limiter, stop=stop)
        if prediction.status != PredictionStatus.SUCCEEDED:
            raise PredictionError(prediction)
        prediction = self._with_output(prediction, limiter=limiter, stop=stop)
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
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
        external_url: str | None = None,
        external_label: str = OUTPUT_URL_LABEL,
        external_headers: Mapping[str, str] | None = None,
        content: Callable[[], Generator[bytes, None, None]] | None = None,
        download_to: Path | None = None,
    ) -> httpx.Response:
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
            if stop is not None and stop.is_set():
                raise _Stopped
            if limiter is not None:
                limiter.acquire()
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
            stream = content() if content is not None else None
            try:
                if download_to is not None:
                    response = self._stream_into(method, url, headers, timeout, download_to)
                else:
                    response = self._http.request(
                        method,
                        url,
                        params=params,
                        content=body if stream is None else stream,
                        headers=headers,
                        timeout=timeout,
                    )
                failure = classify_response(response)
            except httpx.TransportError as exc:
                error, failure = exc, classify_exception(exc)
            except BaseException:
                self.breaker.release(probe)
                raise
            finally:
                if stream is not None:
                    stream.close()  # closes the file an interrupted upload was reading
            self._attempt_done(method, label, attempt, started, response, failure, probe, use_breaker)
            if failure is None:
                assert response is not None
                return response
            last = (failure, response, error)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise self._final_error(label, failure, response, error, attempt) from error
            self._pause(self._retry_delay(method, label, attempt, failure), stop)

    def _stream_into(
        self, method: str, url: str, headers: Mapping[str, str], timeout: httpx.Timeout, path: Path
    ) -> httpx.Response:
        """One attempt whose successful body goes into `path` block by block (an error body is read as usual). A
        connection lost mid-body raises httpx.TransportError, which the caller retries like any other."""
        with self._http.stream(method, url, headers=headers, timeout=timeout) as response:
            if not response.is_success:
                response.read()
                return response
            with path.open("wb") as handle:
                for block in response.iter_bytes(UPLOAD_BLOCK_BYTES):
                    handle.write(block)
        return response

    def _pause(self, seconds: float, stop: threading.Event | None) -> None:
        if seconds <= 0:
            return
        if stop is not None and self._sleep is time.sleep:
            if stop.wait(seconds):
                raise _Stopped
        else:
            self._sleep(seconds)

    def _get(
        self, prediction_id: str, limiter: RateLimiter | None = None, stop: threading.Event | None = None
    ) -> Prediction:
        response = self._send("GET", f"/v1/predictions/{prediction_id}", limiter=limiter, stop=stop)
        return Prediction.from_api(parse_json(response))

    def _wait(
        self,
        prediction: Prediction,
        *,
        timeout: float | None,
        limiter: RateLimiter | None = None,
        stop: threading.Event | None = None,
    ) -> Prediction:
        """Polls with backoff (0.5 s doubling to 5 s) until the prediction is terminal."""
        deadline = None if timeout is None else self._clock() + timeout
        delay = POLL_INITIAL_DELAY
        while not prediction.is_terminal:
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(prediction.id, prediction.status.value, timeout or 0.0)
            self._pause(delay if remaining is None else min(delay, remaining), stop)
            prediction = self._get(prediction.id, limiter, stop)
            delay = min(delay * 2, POLL_MAX_DELAY)
        return prediction

    def _with_output(
        self, prediction: Prediction, *, limiter: RateLimiter | None = None, stop: threading.Event | None = None
    ) -> Prediction:
        """A succeeded prediction whose output is behind `output_url`, with the output read from the link (a link
        that expired in the meantime is refreshed once by reading the prediction again)."""
        for fresh in (False, True):
            if prediction.output is not None or not prediction.output_url:
                return prediction
            try:
                response = self._send("GET", "", external_url=prediction.output_url, stop=stop)
            except APIError as exc:
                if fresh or exc.status_code not in (400, 403, 404):
                    raise
                prediction = self._get(prediction.id, limiter, stop)
                continue
            return prediction.with_output(parse_json(response))
        return prediction

    def _download(self, url: str, label: str, path: Path) -> None:
        """Streams a presigned file into `path`, through `<path>.part` so that an interrupted download never looks
        like a finished file. An APIError (such as an expired link) is left to the caller."""
        part = partial_path(path)
        try:
            response = self._send("GET", "", external_url=url, external_label=label, download_to=part)
            if not response.is_success:  # a redirect (never followed): not the file
                raise ResponseFormatError(f"{link_name(label)} answered HTTP {response.status_code}, not the file")
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)


class Predictions:
    """`client.predictions`: create, get, list, cancel and wait."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        inputs: str | Sequence[str],
        *,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
    ) -> Prediction:
        """Submit a prediction. `wait` (seconds, at most 20) holds the reply until it finishes; the returned
        prediction may still be queued or running (then `wait()` for it). An Idempotency-Key is generated when none
        is given and reused by every retry, so a retry never creates a second prediction."""
        body = create_body(inputs, parameters, metadata, webhook)
        key = idempotency_key or new_idempotency_key()
        response = self._client._send("POST", "/v1/predictions", body=body, idempotency_key=key, wait=wait_header(wait))
        return Prediction.from_api(parse_json(response))

    def get(self, prediction_id: str, *, fetch_output: bool = False) -> Prediction:
        """One prediction, as the API has it. `fetch_output`: read an output kept behind `output_url` too."""
        prediction = self._client._get(prediction_id)
        return self._client._with_output(prediction) if fetch_output else prediction

    def cancel(self, prediction_id: str) -> Prediction:
        """Cancel a queued or running prediction (cancelling twice is fine; a finished one is a ConflictError)."""
        response = self._client._send(
            "POST", f"/v1/predictions/{prediction_id}/cancel", idempotency_key=new_idempotency_key()
        )
        return Prediction.from_api(parse_json(response))

    def wait(
        self, prediction: str | Prediction, *, timeout: float | None = None, fetch_output: bool = True
    ) -> Prediction:
        """Poll until the prediction is succeeded, failed, cancelled or expired (WaitTimeoutError after `timeout`
        seconds). A failed one is returned, not raised. `fetch_output`: read an output kept behind `output_url`."""
        current = self._client._get(prediction) if isinstance(prediction, str) else prediction
        current = self._client._wait(current, timeout=timeout)
        return self._client._with_output(current) if fetch_output else current

    def iterate(self, *, status: PredictionStatus | str | None = None, page_size: int = 100) -> Iterator[Prediction]:
        """Every prediction (newest first, without outputs), following `next_cursor` until it is null."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, limit=page_size, cursor=cursor)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def list(
        self, *, status: PredictionStatus | str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> PredictionPage:
        """One page, newest first, without outputs. A page can hold fewer than `limit` items (even none) and still
        have a `next_cursor`: keep following it until it is None (or use `iterate`)."""
        params: builtins.dict[str, str | int] = {}
        if status is not None:
            params["status"] = str(status)
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        response = self._client._send("GET", "/v1/predictions", params=params)
        return PredictionPage.from_api(parse_json(response))


class Jobs:
    """`client.jobs`: bulk jobs over a JSONL file: create (and upload), get, list, cancel, retry, wait, download."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        dry_run: bool = False,
        progress: UploadProgressCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create a job for the JSONL file at `path` and upload the file, which starts the job.

        The POST carries an Idempotency-Key reused by each of its retries. The upload streams the file from disk
        (memory stays bounded for any size) to the presigned link with exactly the headers it was signed with and
        no API key, and is retried on connection errors and 5xx: a PUT of the same bytes to the same key is
        idempotent. `progress(bytes_sent, total)` follows it. Returns the job as read after the upload (it can
        still be `awaiting_upload` for a moment: the API notices the file asynchronously). A job whose upload
        failed stays `awaiting_upload` until it expires; create another."""
        file = Path(path)
        size = upload_size(file)  # before the POST: an unreadable or empty file creates nothing
        body = job_body(metadata, webhook, dry_run)
        key = idempotency_key or new_idempotency_key()
        job = Job.from_api(parse_json(self._client._send("POST", "/v1/jobs", body=body, idempotency_key=key)))
        if job.upload is None:
            raise ResponseFormatError(f"job {job.id} was created without an upload link")
        self._client._send(
            job.upload.method,
            "",
            external_url=job.upload.url,
            external_label=UPLOAD_URL_LABEL,
            external_headers={**job.upload.headers, "Content-Length": str(size)},  # not chunked: S3 needs a length
            content=lambda: read_blocks(file, size, progress),
        )
        return self.get(job.id)

    def get(self, job_id: str) -> Job:
        """One job, as the API has it now (its result links are fresh: they last 15 minutes)."""
        return Job.from_api(parse_json(self._client._send("GET", f"/v1/jobs/{job_id}")))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> JobPage:
        """One page of the caller's jobs, newest first (API jobs, inbox jobs and retries)."""
        params: builtins.dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return JobPage.from_api(parse_json(self._client._send("GET", "/v1/jobs", params=params)))

    def iterate(self, *, page_size: int = 100) -> Iterator[Job]:
        """Every job, newest first, following `next_cursor` until it is null."""
        cursor: str | None = None
        while True:
            page = self.list(limit=page_size, cursor=cursor)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        """Stop launching the job's chunks (cancelling twice is fine; a finished job is a ConflictError). Chunks
        already running finish and are kept: the job is `cancelling`, then `cancelled` with its files."""
        key = new_idempotency_key()
        return Job.from_api(parse_json(self._client._send("POST", f"/v1/jobs/{job_id}/cancel", idempotency_key=key)))

    def retry(self, job_id: str) -> Job:
        """A new job of only the lines that failed (`parent_id` set). ConflictError if the job has not finished or
        has no failed lines."""
        key = new_idempotency_key()
        return Job.from_api(parse_json(self._client._send("POST", f"/v1/jobs/{job_id}/retry", idempotency_key=key)))

    def wait(self, job: str | Job, *, timeout: float | None = None, progress: JobProgressCallback | None = None) -> Job:
        """Poll with backoff (0.5 s doubling to 5 s) until the job is completed, failed, cancelled, expired or
        validated (a dry run); one that failed is returned, not raised. `progress(job)` is called with the job as
        first seen and after every poll. WaitTimeoutError after `timeout` seconds."""
        client = self._client
        current = self.get(job) if isinstance(job, str) else job
        deadline = None if timeout is None else client._clock() + timeout
        delay = POLL_INITIAL_DELAY
        if progress is not None:
            progress(current)
        while not current.is_terminal:
            remaining = None if deadline is None else deadline - client._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(current.id, current.status.value, timeout or 0.0, kind="job")
            client._pause(delay if remaining is None else min(delay, remaining), None)
            current = self.get(current.id)
            if progress is not None:
                progress(current)
            delay = min(delay * 2, POLL_MAX_DELAY)
        return current

    def download(
        self,
        job: str | Job,
        *,
        output: str | os.PathLike[str] | None = None,
        errors: str | os.PathLike[str] | None = None,
    ) -> JobDownload:
        """Stream a finished job's output file to `output` and its error file to `errors` (each through
        `<path>.part`, renamed when complete). A link that expired (400/403) is renewed once per file by reading
        the job again. JobError if the job has not finished. Returns the job as last read and the paths written
        (None for a file not asked for, or one the job does not have)."""
        current = job if isinstance(job, Job) and job.is_terminal else self.get(job_id_of(job))
        if not current.is_terminal:
            raise not_finished(current)
        current, output_path = self._fetch(current, "output", output)
        current, errors_path = self._fetch(current, "errors", errors)
        return JobDownload(current, output_path, errors_path)

    def _fetch(self, job: Job, kind: str, target: str | os.PathLike[str] | None) -> tuple[Job, Path | None]:
        url, label = job_file_url(job, kind)
        if target is None or url is None:
            return job, None
        path = Path(target)
        try:
            self._client._download(url, label, path)
        except APIError as exc:
            if exc.status_code not in EXPIRED_LINK_STATUSES:
                raise
            job = self.get(job.id)  # fresh links; a second refusal is raised
            url, label = job_file_url(job, kind)
            if url is None:
                return job, None
            self._client._download(url, label, path)
        return job, path


class Webhooks:
    """`client.webhooks`: the tenant's signing secret, for `verify_webhook` on the receiving side."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def secret(self) -> str:
        """The `whsec_...` secret that signs this tenant's deliveries (made on first read)."""
        return webhook_secret_of(parse_json(self._client._send("GET", "/v1/webhooks/secret")))

    def rotate_secret(self) -> str:
        """A new secret; deliveries are signed with the old one too for 24 hours."""
        response = self._client._send("POST", "/v1/webhooks/secret/rotate", idempotency_key=new_idempotency_key())
        return webhook_secret_of(parse_json(response))
