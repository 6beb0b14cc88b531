"""What the commands share: exit codes, the context a command runs in (its client, its output), argument types,
progress bars, and the `list` command's shape."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from inference_client._base import API_KEY_ENV, API_URL_ENV
from inference_client.async_client import AsyncClient
from inference_client.models import Job, Page, Prediction

T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_UNAVAILABLE = 6
EXIT_PREDICTION_FAILED = 7
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # as if killed by SIGPIPE, like other commands in a pipeline
EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_ERROR}    the API refused the request (another 4xx: 400, 409, 413, 422), or an unexpected answer
  {EXIT_USAGE}    usage: bad arguments, an unreadable file, an input line the API would refuse (empty is skipped)
  {EXIT_CONFIG}    configuration: no API URL or key (set {API_URL_ENV} and {API_KEY_ENV})
  {EXIT_AUTH}    authentication: the API key is missing, invalid or revoked (401/403)
  {EXIT_NOT_FOUND}    not found: no such prediction or job (404)
  {EXIT_UNAVAILABLE}    unavailable: the API could not be reached, timed out, kept answering 5xx/429, or the
       circuit breaker is open; retrying later may work
  {EXIT_PREDICTION_FAILED}    a prediction or job failed, was cancelled or expired, or did not finish in time (a job's
       files are downloaded first when asked for: what finished is kept)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); `embed -o` keeps what it wrote and a submitted job keeps running:
       rerun the same command to resume
  {EXIT_BROKEN_PIPE}  the reader of stdout went away (`... | head`)
"""


class UsageError(Exception):
    """A bad argument or input file: exit 2 with a one-line message."""


@dataclass
class Progress:
    """What an interrupted `embed` had done, or which job `jobs submit` was following, for its message."""

    output: Path | None = None
    written: int = 0
    job_id: str | None = None


@dataclass
class Context:
    args: argparse.Namespace
    json: bool
    stdout: IO[str]
    stderr: IO[str]
    connect: Callable[..., AsyncClient] = AsyncClient
    progress: Progress = field(default_factory=Progress)

    def client(self) -> AsyncClient:
        return self.connect(self.args.api_url, self.args.api_key, timeout=self.args.timeout)

    async def call(self, request: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """One request with a client of its own."""
        async with self.client() as client:
            return await request(client)

    def emit(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")

    def show(self, item: Prediction | Job, text: str) -> None:
        """The item as the API's JSON with --json, else `text`."""
        if self.json:
            self.emit(item.to_dict())
        else:
            self.stdout.write(text)

    def note(self, message: str) -> None:
        """A line for the person at the terminal, on stderr; none with --json (stderr is then for the error)."""
        if not self.json:
            self.stderr.write(message + "\n")


# -- arguments ---------------------------------------------------------------------------------------------------


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_int, default=None, help="items per page (1..100, default 20)")
    parser.add_argument("--cursor", help="next_cursor of the previous page")
    parser.add_argument("--all", action="store_true", help="follow next_cursor to the end")


# -- output ------------------------------------------------------------------------------------------------------


def progress_bar(
    total: int, enabled: bool, **options: Any
) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    """A tqdm bar on stderr (items/s and ETA) when it is a terminal, else nothing. `options` go to tqdm."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        return (lambda _done, _total: None), (lambda: None)
    tqdm = importlib.import_module("tqdm").tqdm  # imported here: `inference --help` stays fast
    options = {"unit": "text", "smoothing": 0.1, **options}
    bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True, **options)

    def update(done: int, _total: int | None) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def rows(fields: list[tuple[str, str]]) -> str:
    """`name         value` lines, as `get` commands print an item."""
    return "".join(f"{name:<13}{value}\n" for name, value in fields)


async def list_command(
    ctx: Context,
    noun: str,
    read_page: Callable[[AsyncClient, str | None], Awaitable[Page[Any]]],
    line: Callable[[Any], str],
) -> int:
    """`inference <noun> list`: one page (--all: every page), as the API's JSON or one `line` per item."""
    items: list[Any] = []
    cursor = ctx.args.cursor
    async with ctx.client() as client:
        while True:
            page = await read_page(client, cursor)
            items.extend(page.data)
            cursor = page.next_cursor
            if not ctx.args.all or cursor is None:
                break
    if ctx.json:
        ctx.emit({"data": [item.to_dict() for item in items], "next_cursor": cursor})
        return EXIT_OK
    for item in items:
        ctx.stdout.write(line(item))
    if cursor is not None:
        ctx.stderr.write(f"more: inference {noun} list --cursor {cursor} (or --all)\n")
    return EXIT_OK
