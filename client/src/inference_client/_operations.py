"""How `Client` and `AsyncClient` share one source: every method is written once, as an *operation*.

An operation is a generator that yields effects (send this HTTP attempt, pause this long, start this in the
background, ...) and is sent back each effect's result, or has its error raised into it at the `yield`. It does no
I/O itself. `BlockingIO` (client.py) and `AsyncIO` (async_client.py) are the two drivers that do the effects; they
are the only code that differs between the clients:

    @operation
    def get(self, job_id: str) -> Operation[Job]:
        data = yield from self._client._json("GET", f"/v1/jobs/{job_id}")
        return Job.from_api(data)

`client.jobs.get(id)` runs it to its result; `await async_client.jobs.get(id)` does the same as a coroutine. A
`@stream` operation also yields `Emit(item)`s: the items of the iterator (or async iterator) the method returns.
Other operations call one through the class, `yield from JobsBase.get(self, id)`: that is the generator itself.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

import httpx

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


# -- effects: what an operation asks of its driver -----------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Wait `seconds` (none if 0). Also where a worker thread of an `embed` call that is over stops."""

    seconds: float


@dataclass(frozen=True)
class Send:
    """One HTTP attempt, answered with the response; an httpx.TransportError is raised into the operation.

    `upload`: a streamed body (each attempt gets a fresh one). `download_to`: a successful response's body is
    streamed into this file rather than read into memory (an error's body is read as usual)."""

    method: str
    url: str
    headers: Mapping[str, str]
    timeout: httpx.Timeout
    params: Mapping[str, str | int] | None = None
    body: bytes | None = None
    upload: Iterator[bytes] | None = None
    download_to: Path | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient, upload: Any) -> httpx.Request:
        """The request, built by the driver's httpx client (its defaults apply) with `upload` as the driver's own
        kind of stream."""
        content = self.body if upload is None else upload
        return http.build_request(
            self.method, self.url, params=self.params, content=content, headers=self.headers, timeout=self.timeout
        )


class Handle(Protocol[T_co]):
    """A concurrent operation started by `Spawn` (a Future or an asyncio Task): `result()` once it is done."""

    def result(self) -> T_co: ...


@dataclass(frozen=True)
class Spawn:
    """Start `operation` concurrently, at most `limit` running at once; answered with its Handle. If the operation
    that spawned it ends first, the driver stops what is still running."""

    operation: Operation[Any]
    limit: int


@dataclass(frozen=True)
class WaitFirst:
    """Wait until at least one of `handles` is done; answered with the set of those that are."""

    handles: Sequence[Handle[Any]]


@dataclass(frozen=True)
class Gather:
    """Run a stream operation to its end; answered with the list of what it emitted."""

    stream: Stream[Any]


@dataclass(frozen=True)
class Emit(Generic[T]):
    """An item of a stream, handed to the caller (who may stop reading here)."""

    value: T


Effect = Pause | Send | Spawn | WaitFirst | Gather
Operation = Generator[Effect, Any, R]
"""Yields effects, returns R."""
Stream = Generator[Effect | Emit[T], Any, None]
"""Yields effects and `Emit(item)`s."""


class Run(Generic[T, R]):
    """Steps one operation for a driver: `for effect in run:` gives each effect once the previous one has been
    answered (`answer`) or failed (`fail`), and ends when the operation returns (`done`, `result`)."""

    result: R

    def __init__(self, operation: Generator[Effect | Emit[T], Any, R]) -> None:
        self._operation = operation
        self._reply: Any = None
        self._error: BaseException | None = None
        self.done = False

    def __iter__(self) -> Iterator[Effect | Emit[T]]:
        while True:
            reply, error, self._reply, self._error = self._reply, self._error, None, None
            try:
                effect = self._operation.send(reply) if error is None else self._operation.throw(error)
            except StopIteration as returned:
                self.done, self.result = True, returned.value
                return
            yield effect

    def answer(self, reply: Any) -> None:
        self._reply = reply

    def fail(self, error: BaseException) -> None:
        self._error = error

    def close(self) -> None:
        """Ends an operation left part-way (its `finally` blocks run); nothing if it has returned."""
        self._operation.close()


# -- methods from operations ---------------------------------------------------------------------------------------


class BlockingDriver(Protocol):
    """What runs a synchronous class's operations (`client.BlockingIO`)."""

    def call(self, operation: Operation[R]) -> R: ...
    def drive(self, run: Run[T, Any]) -> Iterator[T]: ...


class AsyncDriver(Protocol):
    """What runs an asyncio class's operations (`async_client.AsyncIO`)."""

    def call(self, operation: Operation[R]) -> Awaitable[R]: ...
    def drive(self, run: Run[T, Any]) -> AsyncIterator[T]: ...


class Blocking:
    """Base of the synchronous classes (`Client`, `Predictions`, ...): `_io` runs their operations."""

    _io: BlockingDriver


class Awaiting:
    """Base of the asyncio classes (`AsyncClient`, `AsyncPredictions`, ...): `_io` runs their operations."""

    _io: AsyncDriver


class _Method:
    """What `operation` and `stream` share: the generator function, and the look of the methods made from it."""

    def __init__(self, op: Callable[..., Any]) -> None:
        self.op = op
        self.__doc__ = op.__doc__
        signature = inspect.signature(op)  # as callers see it: no `self`, no generator return type
        self._signature = signature.replace(
            parameters=list(signature.parameters.values())[1:], return_annotation=signature.empty
        )

    def _dress(self, method: Callable[..., Any]) -> Any:
        functools.update_wrapper(method, self.op, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        method.__signature__ = self._signature  # type: ignore[attr-defined]  # what help() and inspect show
        return method


class operation(_Method, Generic[P, R]):  # a decorator: lower case, like `property`
    """`@operation` on a method returning `Operation[R]`: on a `Blocking` object the method returns R, on an
    `Awaiting` one it is a coroutine function of R. Through the class it is the generator function itself."""

    def __init__(self, op: Callable[Concatenate[Any, P], Operation[R]]) -> None:
        super().__init__(op)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Callable[Concatenate[Any, P], Operation[R]]: ...
    @overload
    def __get__(self, instance: Blocking, owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(self, instance: Awaiting, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, instance: Blocking | Awaiting | None, owner: type[Any]) -> Any:
        if instance is None:
            return self.op
        op = self.op
        if isinstance(instance, Awaiting):
            io = instance._io

            async def coroutine(*args: Any, **kwargs: Any) -> Any:
                return await io.call(op(instance, *args, **kwargs))

            return self._dress(coroutine)
        return self._dress(lambda *args, **kwargs: instance._io.call(op(instance, *args, **kwargs)))


class stream(_Method, Generic[P, T]):
    """`@stream` on a method returning `Stream[T]`: on a `Blocking` object the method returns an iterator of the
    items it emits, on an `Awaiting` one an async iterator. Through the class it is the generator function."""

    def __init__(self, op: Callable[Concatenate[Any, P], Stream[T]]) -> None:
        super().__init__(op)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Callable[Concatenate[Any, P], Stream[T]]: ...
    @overload
    def __get__(self, instance: Blocking, owner: type[Any]) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, instance: Awaiting, owner: type[Any]) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, instance: Blocking | Awaiting | None, owner: type[Any]) -> Any:
        if instance is None:
            return self.op
        io, op = instance._io, self.op
        return self._dress(lambda *args, **kwargs: io.drive(Run(op(instance, *args, **kwargs))))
