"""`AsyncClient`: the asyncio client (httpx.AsyncClient; `embed` runs its requests as tasks)."""

from __future__ import annotations

import asyncio
import builtins
import os
import random as _random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence, Sized
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
from inference_client.client import JobProgressCallback, ProgressCallback, UploadProgressCallback
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
from inference_client.ratelimit import AsyncRateLimiter
from inference_client.retry import Failure, RetryPolicy, classify_exception, classify_response


class AsyncClient(BaseClient):
    """asyncio client. Use as `async with AsyncClient() as client:`, or `await client.aclose()`."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        observers: Sequence[Observer] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self.predictions = AsyncPredictions(self)
        self.jobs = AsyncJobs(self)
        self.webhooks = AsyncWebhooks(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- embeddings ------------------------------------------------------------------------------------------------

    async def embed(
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
        """One embedding per text, in input order (see `Client.embed`)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        for index, text in enumerate(texts):
            check_text(text, index)
        embeddings: list[list[float]] = []
        async for batch in self.embed_batches(
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

    async def embed_batches(
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
    ) -> AsyncIterator[EmbeddingBatch]:
        """Each request's embeddings in input order, as soon as they and every batch before them are done (see
        `Client.embed_batches`). Close the generator (`aclose()`) if you stop reading early."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if total is None and isinstance(texts, Sized):
            total = len(texts)
        parameters: dict[str, Any] = {"normalize": normalize, "encoding_format": "base64"}
        if not cache:
            parameters["cache"] = False  # sent only when set, so servers without a result cache accept the body
        chunks = iter_chunks(texts, {"parameters": parameters})
        limiter = AsyncRateLimiter(rate_limit, clock=self._clock, sleep=self._sleep) if rate_limit else None
        slots = asyncio.Semaphore(concurrency)
        window = 2 * concurrency
        pending: deque[asyncio.Task[EmbeddingBatch]] = deque()
        reported: set[asyncio.Task[EmbeddingBatch]] = set()
        done = 0

        async def run(chunk: Chunk) -> EmbeddingBatch:
            async with slots:
                return await self._embed_chunk(chunk, limiter, timeout)

        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        pending.append(asyncio.ensure_future(run(chunk)))
                if not pending:
                    return
                waiting = [task for task in pending if task not in reported]
                if waiting:
                    completed, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for task in completed:
                        batch = task.result()  # the first failure ends the whole call
                        reported.add(task)
                        done += len(batch.embeddings)
                        if progress is not None:
                            progress(done, total)
                while pending and pending[0] in reported:
                    task = pending.popleft()
                    reported.discard(task)
                    yield task.result()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _embed_chunk(
        self, chunk: Chunk, limiter: AsyncRateLimiter | None, timeout: float | None
    ) -> EmbeddingBatch:
        key = new_idempotency_key()
        response = await self._send(
            "POST", "/v1/predictions", body=chunk.body, idempotency_key=key, wait=20, limiter=limiter
        )
        prediction = Prediction.from_api(parse_json(response))
        prediction = await self._wait(prediction, timeout=timeout, limiter=limiter)
        if prediction.status != PredictionStatus.SUCCEEDED:
            raise PredictionError(prediction)
        prediction = await self._with_output(prediction, limiter=limiter)
        output = check_output(prediction.output, len(chunk.texts), prediction.id)
        return EmbeddingBatch(chunk.start, output.embeddings, output.truncated, prediction.id)

    # -- the request loop ------------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
        idempotency_key: str | None = None,
        wait: int | None = None,
        limiter: AsyncRateLimiter | None = None,
        external_url: str | None = None,
        external_label: str = OUTPUT_URL_LABEL,
        external_headers: Mapping[str, str] | None = None,
        content: Callable[[], AsyncGenerator[bytes, None]] | None = None,
        download_to: Path | None = None,
    ) -> httpx.Response:
        """One logical request: retried on retryable failures (same headers, same Idempotency-Key, same body).
        `external_url`, `content` and `download_to` as in `Client._send`."""
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
            if limiter is not None:
                await limiter.acquire()
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
                    response = await self._stream_into(method, url, headers, timeout, download_to)
                else:
                    response = await self._http.request(
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
                    await stream.aclose()  # closes the file an interrupted upload was reading
            self._attempt_done(method, label, attempt, started, response, failure, probe, use_breaker)
            if failure is None:
                assert response is not None
                return response
            last = (failure, response, error)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise self._final_error(label, failure, response, error, attempt) from error
            delay = self._retry_delay(method, label, attempt, failure)
            if delay > 0:
                await self._sleep(delay)

    async def _stream_into(
        self, method: str, url: str, headers: Mapping[str, str], timeout: httpx.Timeout, path: Path
    ) -> httpx.Response:
        """One attempt whose successful body goes into `path` block by block (see `Client._stream_into`)."""
        async with self._http.stream(method, url, headers=headers, timeout=timeout) as response:
            if not response.is_success:
                await response.aread()
                return response
            with path.open("wb") as handle:
                async for block in response.aiter_bytes(UPLOAD_BLOCK_BYTES):
                    handle.write(block)
        return response

    async def _get(self, prediction_id: str, limiter: AsyncRateLimiter | None = None) -> Prediction:
        response = await self._send("GET", f"/v1/predictions/{prediction_id}", limiter=limiter)
        return Prediction.from_api(parse_json(response))

    async def _wait(
        self, prediction: Prediction, *, timeout: float | None, limiter: AsyncRateLimiter | None = None
    ) -> Prediction:
        deadline = None if timeout is None else self._clock() + timeout
        delay = POLL_INITIAL_DELAY
        while not prediction.is_terminal:
            remaining = None if deadline is None else deadline - self._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(prediction.id, prediction.status.value, timeout or 0.0)
            await self._sleep(delay if remaining is None else min(delay, remaining))
            prediction = await self._get(prediction.id, limiter)
            delay = min(delay * 2, POLL_MAX_DELAY)
        return prediction

    async def _with_output(self, prediction: Prediction, *, limiter: AsyncRateLimiter | None = None) -> Prediction:
        for fresh in (False, True):
            if prediction.output is not None or not prediction.output_url:
                return prediction
            try:
                response = await self._send("GET", "", external_url=prediction.output_url)
            except APIError as exc:
                if fresh or exc.status_code not in (400, 403, 404):
                    raise
                prediction = await self._get(prediction.id, limiter)
                continue
            return prediction.with_output(parse_json(response))
        return prediction

    async def _download(self, url: str, label: str, path: Path) -> None:
        """Streams a presigned file into `path` through `<path>.part` (see `Client._download`)."""
        part = partial_path(path)
        try:
            response = await self._send("GET", "", external_url=url, external_label=label, download_to=part)
            if not response.is_success:
                raise ResponseFormatError(f"{link_name(label)} answered HTTP {response.status_code}, not the file")
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)


async def _read_blocks(path: Path, size: int, progress: UploadProgressCallback | None) -> AsyncGenerator[bytes, None]:
    """`read_blocks` for httpx.AsyncClient, which wants an async body (the reads themselves are short, inline)."""
    blocks = read_blocks(path, size, progress)
    try:
        for block in blocks:
            yield block
    finally:
        blocks.close()


class AsyncPredictions:
    """`client.predictions`: create, get, list, cancel and wait (see `Predictions`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        inputs: str | Sequence[str],
        *,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
    ) -> Prediction:
        body = create_body(inputs, parameters, metadata, webhook)
        key = idempotency_key or new_idempotency_key()
        response = await self._client._send(
            "POST", "/v1/predictions", body=body, idempotency_key=key, wait=wait_header(wait)
        )
        return Prediction.from_api(parse_json(response))

    async def get(self, prediction_id: str, *, fetch_output: bool = False) -> Prediction:
        prediction = await self._client._get(prediction_id)
        return await self._client._with_output(prediction) if fetch_output else prediction

    async def cancel(self, prediction_id: str) -> Prediction:
        response = await self._client._send(
            "POST", f"/v1/predictions/{prediction_id}/cancel", idempotency_key=new_idempotency_key()
        )
        return Prediction.from_api(parse_json(response))

    async def wait(
        self, prediction: str | Prediction, *, timeout: float | None = None, fetch_output: bool = True
    ) -> Prediction:
        current = await self._client._get(prediction) if isinstance(prediction, str) else prediction
        current = await self._client._wait(current, timeout=timeout)
        return await self._client._with_output(current) if fetch_output else current

    async def iterate(
        self, *, status: PredictionStatus | str | None = None, page_size: int = 100
    ) -> AsyncIterator[Prediction]:
        cursor: str | None = None
        while True:
            page = await self.list(status=status, limit=page_size, cursor=cursor)
            for prediction in page.data:
                yield prediction
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def list(
        self, *, status: PredictionStatus | str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> PredictionPage:
        params: builtins.dict[str, str | int] = {}
        if status is not None:
            params["status"] = str(status)
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        response = await self._client._send("GET", "/v1/predictions", params=params)
        return PredictionPage.from_api(parse_json(response))


class AsyncJobs:
    """`client.jobs`: create (and upload), get, list, cancel, retry, wait, download (see `Jobs`)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        dry_run: bool = False,
        progress: UploadProgressCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create a job for the file and upload it, which starts the job (see `Jobs.create`)."""
        file = Path(path)
        size = upload_size(file)
        body = job_body(metadata, webhook, dry_run)
        key = idempotency_key or new_idempotency_key()
        job = Job.from_api(parse_json(await self._client._send("POST", "/v1/jobs", body=body, idempotency_key=key)))
        if job.upload is None:
            raise ResponseFormatError(f"job {job.id} was created without an upload link")
        await self._client._send(
            job.upload.method,
            "",
            external_url=job.upload.url,
            external_label=UPLOAD_URL_LABEL,
            external_headers={**job.upload.headers, "Content-Length": str(size)},
            content=lambda: _read_blocks(file, size, progress),
        )
        return await self.get(job.id)

    async def get(self, job_id: str) -> Job:
        return Job.from_api(parse_json(await self._client._send("GET", f"/v1/jobs/{job_id}")))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> JobPage:
        params: builtins.dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return JobPage.from_api(parse_json(await self._client._send("GET", "/v1/jobs", params=params)))

    async def iterate(self, *, page_size: int = 100) -> AsyncIterator[Job]:
        cursor: str | None = None
        while True:
            page = await self.list(limit=page_size, cursor=cursor)
            for job in page.data:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> Job:
        response = await self._client._send("POST", f"/v1/jobs/{job_id}/cancel", idempotency_key=new_idempotency_key())
        return Job.from_api(parse_json(response))

    async def retry(self, job_id: str) -> Job:
        response = await self._client._send("POST", f"/v1/jobs/{job_id}/retry", idempotency_key=new_idempotency_key())
        return Job.from_api(parse_json(response))

    async def wait(
        self, job: str | Job, *, timeout: float | None = None, progress: JobProgressCallback | None = None
    ) -> Job:
        """Poll with backoff until the job is terminal (see `Jobs.wait`)."""
        client = self._client
        current = await self.get(job) if isinstance(job, str) else job
        deadline = None if timeout is None else client._clock() + timeout
        delay = POLL_INITIAL_DELAY
        if progress is not None:
            progress(current)
        while not current.is_terminal:
            remaining = None if deadline is None else deadline - client._clock()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(current.id, current.status.value, timeout or 0.0, kind="job")
            await client._sleep(delay if remaining is None else min(delay, remaining))
            current = await self.get(current.id)
            if progress is not None:
                progress(current)
            delay = min(delay * 2, POLL_MAX_DELAY)
        return current

    async def download(
        self,
        job: str | Job,
        *,
        output: str | os.PathLike[str] | None = None,
        errors: str | os.PathLike[str] | None = None,
    ) -> JobDownload:
        """Stream a finished job's files to disk, renewing an expired link once per file (see `Jobs.download`)."""
        current = job if isinstance(job, Job) and job.is_terminal else await self.get(job_id_of(job))
        if not current.is_terminal:
            raise not_finished(current)
        current, output_path = await self._fetch(current, "output", output)
        current, errors_path = await self._fetch(current, "errors", errors)
        return JobDownload(current, output_path, errors_path)

    async def _fetch(self, job: Job, kind: str, target: str | os.PathLike[str] | None) -> tuple[Job, Path | None]:
        url, label = job_file_url(job, kind)
        if target is None or url is None:
            return job, None
        path = Path(target)
        try:
            await self._client._download(url, label, path)
        except APIError as exc:
            if exc.status_code not in EXPIRED_LINK_STATUSES:
                raise
            job = await self.get(job.id)
            url, label = job_file_url(job, kind)
            if url is None:
                return job, None
            await self._client._download(url, label, path)
        return job, path


class AsyncWebhooks:
    """`client.webhooks`: the tenant's signing secret, for `verify_webhook` on the receiving side."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def secret(self) -> str:
        """The `whsec_...` secret that signs this tenant's deliveries (made on first read)."""
        return webhook_secret_of(parse_json(await self._client._send("GET", "/v1/webhooks/secret")))

    async def rotate_secret(self) -> str:
        """A new secret; deliveries are signed with the old one too for 24 hours."""
        response = await self._client._send("POST", "/v1/webhooks/secret/rotate", idempotency_key=new_idempotency_key())
        return webhook_secret_of(parse_json(response))
