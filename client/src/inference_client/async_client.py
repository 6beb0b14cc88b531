"""`AsyncClient`: the asyncio client. Its methods are the operations of `_base` and `_resources`, as coroutines;
`AsyncIO` does their effects with httpx.AsyncClient, the injected sleep, and tasks (`embed` runs its requests as
tasks)."""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from inference_client._base import DEFAULT_TIMEOUT, UPLOAD_BLOCK_BYTES, BaseClient
from inference_client._operations import Awaiting, Effect, Emit, Gather, Operation, Pause, Run, Send, Spawn, WaitFirst
from inference_client._resources import JobsBase, PredictionsBase, WebhooksBase
from inference_client.breaker import CircuitBreaker
from inference_client.observability import Observer
from inference_client.retry import RetryPolicy

R = TypeVar("R")
T = TypeVar("T")


class AsyncIO:
    """Runs operations as coroutines on the running event loop (and as tasks for `Spawn`)."""

    def __init__(self, http: httpx.AsyncClient, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.http = http
        self._sleep = sleep

    async def call(self, operation: Operation[R]) -> R:
        run: Run[Any, R] = Run(operation)
        async for _ in self.drive(run):
            pass  # an operation emits nothing (only a stream does)
        return run.result

    async def drive(self, run: Run[T, Any]) -> AsyncIterator[T]:
        """Does each effect of `run`, yielding what it emits."""
        tasks = _Tasks(self)
        try:
            for effect in run:
                if isinstance(effect, Emit):
                    yield effect.value
                    continue
                try:
                    run.answer(await self._do(effect, tasks))
                except BaseException as exc:  # the operation decides: a cancellation must free the breaker too
                    run.fail(exc)
        finally:
            run.close()
            await tasks.close()

    async def _do(self, effect: Effect, tasks: _Tasks) -> Any:
        match effect:
            case Pause(seconds):
                return await self._sleep(seconds) if seconds > 0 else None
            case Send():
                return await self._send(effect)
            case Spawn(operation, limit):
                return tasks.spawn(operation, limit)
            case WaitFirst(handles):
                done, _ = await asyncio.wait(handles, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                return done
            case Gather(stream):
                return [item async for item in self.drive(Run(stream))]

    async def _send(self, send: Send) -> httpx.Response:
        upload = _AsyncBlocks(send.upload) if send.upload is not None else None
        response = await self.http.send(send.request(self.http, upload), stream=send.download_to is not None)
        if send.download_to is not None:
            try:
                if response.is_success:
                    with send.download_to.open("wb") as handle:
                        async for block in response.aiter_bytes(UPLOAD_BLOCK_BYTES):
                            handle.write(block)
                else:
                    await response.aread()
            finally:
                await response.aclose()
        return response


class _AsyncBlocks:
    """A file's blocks (`read_blocks`) as the async body httpx.AsyncClient wants; the reads are short, inline."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks

    def __aiter__(self) -> _AsyncBlocks:
        return self

    async def __anext__(self) -> bytes:
        block = next(self._blocks, None)
        if block is None:
            raise StopAsyncIteration
        return block


class _Tasks:
    """The tasks `Spawn` starts in one drive, at most `limit` running at once; cancelled (and awaited) if the drive
    ends before them."""

    def __init__(self, io: AsyncIO) -> None:
        self._io = io
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, operation: Operation[Any], limit: int) -> asyncio.Task[Any]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(limit)
        task = asyncio.ensure_future(self._run(self._slots, operation))
        self._running.add(task)
        task.add_done_callback(self._running.discard)  # a finished task is the caller's to read, not ours to keep
        return task

    async def _run(self, slots: asyncio.Semaphore, operation: Operation[Any]) -> Any:
        async with slots:
            return await self._io.call(operation)

    async def close(self) -> None:
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


class AsyncClient(Awaiting, BaseClient):
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
        super().__init__(api_url, api_key, timeout, retry, breaker, observers, clock, random)
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._io = AsyncIO(self._http, sleep)
        self.predictions = AsyncPredictions(self)
        self.jobs = AsyncJobs(self)
        self.webhooks = AsyncWebhooks(self)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class AsyncPredictions(Awaiting, PredictionsBase):
    """`client.predictions`: create, get, list, cancel and wait (see `Predictions`)."""


class AsyncJobs(Awaiting, JobsBase):
    """`client.jobs`: create (and upload), get, list, cancel, retry, wait, download (see `Jobs`)."""


class AsyncWebhooks(Awaiting, WebhooksBase):
    """`client.webhooks`: the tenant's signing secret, for `verify_webhook` on the receiving side."""
