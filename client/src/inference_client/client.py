"""`Client`: the synchronous client. Its methods are the operations of `_base` and `_resources`; `BlockingIO` does
their effects with httpx.Client, sleeps, and threads (`embed` runs its requests on a thread pool)."""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx

from inference_client._base import (
    DEFAULT_TIMEOUT,
    UPLOAD_BLOCK_BYTES,
    BaseClient,
    JobProgressCallback,
    ProgressCallback,
    UploadProgressCallback,
)
from inference_client._operations import Blocking, Effect, Emit, Gather, Operation, Pause, Run, Send, Spawn, WaitFirst
from inference_client._resources import JobsBase, PredictionsBase, WebhooksBase
from inference_client.breaker import CircuitBreaker
from inference_client.observability import Observer
from inference_client.retry import RetryPolicy

__all__ = ["Client", "JobProgressCallback", "Jobs", "Predictions", "ProgressCallback", "UploadProgressCallback"]

R = TypeVar("R")
T = TypeVar("T")


class _Stopped(Exception):
    """A worker noticed that its embed call is over (another chunk failed, or the caller stopped reading)."""


class BlockingIO:
    """Runs operations with blocking I/O, on the calling thread (and on worker threads for `Spawn`)."""

    def __init__(self, http: httpx.Client, sleep: Callable[[float], None]) -> None:
        self.http = http
        self._sleep = sleep

    def call(self, operation: Operation[R], stop: threading.Event | None = None) -> R:
        run: Run[Any, R] = Run(operation)
        for _ in self.drive(run, stop):
            pass  # an operation emits nothing (only a stream does)
        return run.result

    def drive(self, run: Run[T, Any], stop: threading.Event | None = None) -> Iterator[T]:
        """Does each effect of `run`, yielding what it emits. `stop`: set when the call this worker serves is over."""
        threads = _Threads(self)
        try:
            for effect in run:
                if isinstance(effect, Emit):
                    yield effect.value
                    continue
                try:
                    run.answer(self._do(effect, stop, threads))
                except BaseException as exc:  # the operation decides: a KeyboardInterrupt must free the breaker too
                    run.fail(exc)
        finally:
            run.close()
            threads.close(finished=run.done)

    def _do(self, effect: Effect, stop: threading.Event | None, threads: _Threads) -> Any:
        match effect:
            case Pause(seconds):
                return self._pause(seconds, stop)
            case Send():
                return self._send(effect)
            case Spawn(operation, limit):
                return threads.spawn(operation, limit)
            case WaitFirst(handles):
                return wait(handles, return_when=FIRST_COMPLETED).done  # type: ignore[arg-type]  # Futures
            case Gather(stream):
                return list(self.drive(Run(stream), stop))

    def _pause(self, seconds: float, stop: threading.Event | None) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped
        if seconds <= 0:
            return
        if stop is not None and self._sleep is time.sleep:
            if stop.wait(seconds):
                raise _Stopped
        else:
            self._sleep(seconds)

    def _send(self, send: Send) -> httpx.Response:
        """One attempt. A connection lost mid-download raises httpx.TransportError, retried like any other."""
        response = self.http.send(send.request(self.http, send.upload), stream=send.download_to is not None)
        if send.download_to is not None:
            try:
                if response.is_success:
                    with send.download_to.open("wb") as handle:
                        handle.writelines(response.iter_bytes(UPLOAD_BLOCK_BYTES))
                else:
                    response.read()
            finally:
                response.close()
        return response


class _Threads:
    """The worker threads `Spawn` starts in one drive; when the drive ends they are told to stop, and waited for
    only if it ended normally (after an error or an early stop, the caller does not wait on them)."""

    def __init__(self, io: BlockingIO) -> None:
        self._io = io
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()

    def spawn(self, operation: Operation[Any], limit: int) -> Future[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="inference-embed")
        return self._pool.submit(self._io.call, operation, self._stop)

    def close(self, *, finished: bool) -> None:
        if self._pool is not None:
            self._stop.set()
            self._pool.shutdown(wait=finished, cancel_futures=True)


class Client(Blocking, BaseClient):
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
        super().__init__(api_url, api_key, timeout, retry, breaker, observers, clock, random)
        self._http = httpx.Client(transport=transport, follow_redirects=False)
        self._io = BlockingIO(self._http, sleep)
        self.predictions = Predictions(self)
        self.jobs = Jobs(self)
        self.webhooks = Webhooks(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Predictions(Blocking, PredictionsBase):
    """`client.predictions`: create, get, list, cancel and wait."""


class Jobs(Blocking, JobsBase):
    """`client.jobs`: bulk jobs over a JSONL file: create (and upload), get, list, cancel, retry, wait, download."""


class Webhooks(Blocking, WebhooksBase):
    """`client.webhooks`: the tenant's signing secret, for `verify_webhook` on the receiving side."""
