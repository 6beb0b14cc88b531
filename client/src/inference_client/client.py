"""`Client`: the synchronous client (httpx.Client; `embed` runs its requests on a thread pool)."""

from __future__ import annotations

import builtins
import random as _random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from inference_client._base import (
    DEFAULT_TIMEOUT,
    OUTPUT_URL_LABEL,
    POLL_INITIAL_DELAY,
    POLL_MAX_DELAY,
    BaseClient,
    check_output,
    create_body,
    new_idempotency_key,
    parse_json,
    wait_header,
)
from inference_client.breaker import CircuitBreaker
from inference_client.chunking import Chunk, check_text, iter_chunks
from inference_client.errors import APIError, CircuitOpenError, PredictionError, WaitTimeoutError
from inference_client.models import EmbeddingBatch, Prediction, PredictionPage, PredictionStatus
from inference_client.observability import Observer
from inference_client.ratelimit import RateLimiter
from inference_client.retry import Failure, RetryPolicy, classify_exception, classify_response

ProgressCallback = Callable[[int, int | None], None]
"""progress(done, total): texts embedded so far, and how many in all (None when not known)."""


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
        timeout: float | None = None,
    ) -> list[list[float]]:
        """One embedding per text, in input order, for any number of texts.

        The texts are checked first (nothing is sent if one is empty, over 8,192 characters or not valid Unicode),
        split into requests of at most 256 inputs and under 200 KiB of JSON, and sent at most `concurrency` at a
        time and at most `rate_limit` requests per second (every request counts: submissions, polls, retries).
        `timeout` bounds the wait for each request's prediction (None: until it finishes, fails or expires)."""
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
        timeout: float | None = None,
        total: int | None = None,
    ) -> Iterator[EmbeddingBatch]:
        """Like `embed`, but yields each request's embeddings as an `EmbeddingBatch`, in input order, as soon as
        it and every batch before it are done. Reads `texts` lazily (any iterable), so memory stays bounded."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if total is None and isinstance(texts, Sized):
            total = len(texts)
        chunks = iter_chunks(texts, {"parameters": {"normalize": normalize, "encoding_format": "base64"}})
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
    ) -> httpx.Response:
        """One logical request: retried on retryable failures (same headers, same Idempotency-Key, same body)."""
        if external_url is not None:
            url, label, headers, use_breaker = external_url, OUTPUT_URL_LABEL, self._external_headers(), False
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
            try:
                response = self._http.request(
                    method, url, params=params, content=body, headers=headers, timeout=timeout
                )
                failure = classify_response(response)
            except httpx.TransportError as exc:
                error, failure = exc, classify_exception(exc)
            except BaseException:
                self.breaker.release(probe)
                raise
            self._attempt_done(method, label, attempt, started, response, failure, probe, use_breaker)
            if failure is None:
                assert response is not None
                return response
            last = (failure, response, error)
            if not failure.retryable or attempt >= self.retry.max_attempts:
                raise self._final_error(label, failure, response, error, attempt) from error
            self._pause(self._retry_delay(method, label, attempt, failure), stop)

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
