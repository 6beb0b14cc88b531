"""The `inference` command: embeddings for texts or a file (resumable), and predictions get / list / cancel.

An expected failure (bad key, API down, bad input) prints one `error:` line (with `--json`, one JSON object) on
stderr and exits with a code scripts can test; see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from inference_client._base import API_KEY_ENV, API_URL_ENV
from inference_client._version import __version__
from inference_client.async_client import AsyncClient
from inference_client.chunking import check_text
from inference_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    InferenceError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    PredictionError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from inference_client.models import Prediction, PredictionStatus

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
  {EXIT_NOT_FOUND}    not found: no such prediction (404)
  {EXIT_UNAVAILABLE}    unavailable: the API could not be reached, timed out, kept answering 5xx/429, or the
       circuit breaker is open; retrying later may work
  {EXIT_PREDICTION_FAILED}    a prediction failed, was cancelled or expired, or did not finish in time
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); `embed -o` keeps what it wrote: rerun the same command to resume
  {EXIT_BROKEN_PIPE}  the reader of stdout went away (`... | head`)
"""

_RECORD = re.compile(rb'^\{"line":([0-9]+),"embedding":\[.*\]\}\r?\n$', re.DOTALL)


class UsageError(Exception):
    """A bad argument or input file: exit 2 with a one-line message."""


@dataclass
class Progress:
    """What an interrupted `embed` had done, for its message."""

    output: Path | None = None
    written: int = 0


@dataclass
class Context:
    args: argparse.Namespace
    json: bool
    stdout: IO[str]
    stderr: IO[str]
    progress: Progress = field(default_factory=Progress)

    def client(self) -> AsyncClient:
        return AsyncClient(self.args.api_url, self.args.api_key, timeout=self.args.timeout)

    def emit(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")


# -- arguments ---------------------------------------------------------------------------------------------------


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help=f"the API's base URL (default: ${API_URL_ENV})")
    common.add_argument(
        "--api-key", help=f"the API key (default: ${API_KEY_ENV}; prefer the variable: arguments show in `ps`)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (errors too, on stderr)")
    common.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds per HTTP request (30)")
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: log retries and the breaker on stderr; -vv: every request",
    )

    parser = argparse.ArgumentParser(
        prog="inference",
        description="Client for the inference API: embeddings and predictions.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"inference-client {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser(
        "embed",
        parents=[common],
        help="embed texts (arguments, or one per line of a file)",
        description="Embed texts given as arguments, or one per line of a file (-f; `-f -` reads stdin). Blank "
        'lines are skipped. With -o, writes one JSON line per input line, in order, {"line", "embedding"}, and '
        "a rerun skips the lines already in the file (resume after an interruption).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed")
    embed.add_argument("-f", "--file", help="read texts from this file, one per line (- for stdin)")
    embed.add_argument("-o", "--output", help="write JSON lines here (appends; resumes an interrupted run)")
    embed.add_argument("--concurrency", type=_positive_int, default=4, help="requests in flight at once (4)")
    embed.add_argument("--rate", type=_positive_float, default=None, help="at most this many requests per second")
    embed.add_argument("--no-normalize", action="store_true", help="raw mean-pooled vectors, not L2-normalised")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    embed.add_argument(
        "--wait-timeout", type=_positive_float, default=None, help="give up on a request after this many seconds"
    )
    embed.set_defaults(run=_embed)

    predictions = commands.add_parser("predictions", help="get, list or cancel predictions")
    actions = predictions.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", parents=[common], help="show one prediction")
    get.add_argument("id")
    get.add_argument("--wait", action="store_true", help="wait until it has finished")
    get.set_defaults(run=_get)
    listing = actions.add_parser("list", parents=[common], help="list predictions, newest first")
    listing.add_argument("--status", choices=[s.value for s in PredictionStatus])
    listing.add_argument("--limit", type=_positive_int, default=None, help="items per page (1..100, default 20)")
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    listing.set_defaults(run=_list)
    cancel = actions.add_parser("cancel", parents=[common], help="cancel a queued or running prediction")
    cancel.add_argument("id")
    cancel.set_defaults(run=_cancel)
    return parser


# -- embed -------------------------------------------------------------------------------------------------------


def _read_lines(source: str) -> list[str]:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{source}: line {line} is not UTF-8") from exc
    return text.splitlines() if text else []


def resume_state(path: Path, line_count: int) -> set[int]:
    """The input line numbers already in an output file. A last line cut short by an interruption is removed."""
    if not path.exists():
        return set()
    done: set[int] = set()
    try:
        with path.open("rb+") as handle:
            complete = 0
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    break  # written in part when the run was interrupted
                line = _record_line(raw)
                if line is None:
                    raise UsageError(f"{path}: line {number} is not an embedding record; not resuming into it")
                if line > line_count:
                    raise UsageError(
                        f"{path} has input line {line} but the input has {line_count} lines: is it another input's "
                        "output?"
                    )
                done.add(line)
                complete += len(raw)
            handle.seek(0, 2)
            if handle.tell() > complete:
                handle.truncate(complete)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return done


def _record_line(raw: bytes) -> int | None:
    match = _RECORD.match(raw)
    if match:
        return int(match.group(1))
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("line"), int) and isinstance(record.get("embedding"), list):
        return int(record["line"])
    return None


def _record(line: int, embedding: list[float]) -> str:
    # float32 values need at most 9 significant digits to round-trip: a third smaller than repr() of the double.
    values = ",".join(f"{v:.9g}" for v in embedding)
    return f'{{"line":{line},"embedding":[{values}]}}\n'


def _progress_bar(total: int, enabled: bool) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    """A tqdm bar on stderr (items/s and ETA) when it is a terminal, else nothing."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        return (lambda _done, _total: None), (lambda: None)
    tqdm = importlib.import_module("tqdm").tqdm  # imported here: `inference --help` stays fast
    bar = tqdm(total=total, unit="text", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def update(done: int, _total: int | None) -> None:
        bar.update(done - bar.n)

    return update, bar.close


async def _embed(ctx: Context) -> int:
    args = ctx.args
    if args.file is not None and args.texts:
        raise UsageError("give texts as arguments or -f FILE, not both")
    if args.file is None and not args.texts:
        raise UsageError("nothing to embed: give texts as arguments, or -f FILE (- for stdin)")
    lines = _read_lines(args.file) if args.file is not None else list(args.texts)
    where = "line" if args.file is not None else "text"
    items: list[tuple[int, str]] = []
    blank = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            blank += 1
            continue
        check_text(text, number - 1, f"{where} {number}")  # refuse the whole run before sending anything
        items.append((number, text))
    output = Path(args.output) if args.output else None
    already = resume_state(output, len(lines)) if output is not None else set()
    todo = [item for item in items if item[0] not in already]
    started = time.monotonic()
    update, close_bar = _progress_bar(len(todo), not args.no_progress)
    truncated = 0
    ctx.progress.output = output
    try:
        async with ctx.client() as client:
            sink = output.open("a", encoding="utf-8") if output is not None else None
            try:
                batches = client.embed_batches(
                    (text for _, text in todo),
                    concurrency=args.concurrency,
                    rate_limit=args.rate,
                    progress=update,
                    normalize=not args.no_normalize,
                    timeout=args.wait_timeout,
                    total=len(todo),
                )
                async for batch in batches:
                    for offset, embedding in enumerate(batch.embeddings):
                        number = todo[batch.start + offset][0]
                        truncated += batch.truncated[offset] if offset < len(batch.truncated) else 0
                        if sink is not None:
                            sink.write(_record(number, embedding))
                        elif ctx.json:
                            ctx.stdout.write(_record(number, embedding))
                        else:
                            preview = ", ".join(f"{v:.4f}" for v in embedding[:4])
                            ctx.stdout.write(f"{where} {number}: {len(embedding)} dims [{preview}, ...]\n")
                    if sink is not None:
                        sink.flush()
                    ctx.progress.written += len(batch.embeddings)
            finally:
                if sink is not None:
                    sink.close()
    finally:
        close_bar()
    if output is not None:
        summary = {
            "output": str(output),
            "lines": len(lines),
            "written": ctx.progress.written,
            "already_done": len(items) - len(todo),
            "blank_skipped": blank,
            "truncated": truncated,
            "seconds": round(time.monotonic() - started, 3),
        }
        if ctx.json:
            ctx.emit(summary)
        else:
            ctx.stdout.write(
                f"wrote {summary['written']} embeddings to {output} in {summary['seconds']:.1f}s"
                f" ({summary['already_done']} lines already there, {blank} blank lines skipped)\n"
            )
    if truncated and not ctx.json:
        ctx.stderr.write(f"note: {truncated} texts were cut at the model's 256-token limit\n")
    return EXIT_OK


# -- predictions -------------------------------------------------------------------------------------------------


def _describe(prediction: Prediction) -> str:
    rows = [
        ("id", prediction.id),
        ("status", prediction.status.value),
        ("created_at", prediction.raw.get("created_at") or ""),
        ("started_at", prediction.raw.get("started_at") or "-"),
        ("completed_at", prediction.raw.get("completed_at") or "-"),
        ("inputs", str(prediction.input_count)),
    ]
    if prediction.metadata:
        rows.append(("metadata", ", ".join(f"{k}={v}" for k, v in prediction.metadata.items())))
    metrics = prediction.metrics
    if metrics.queue_ms is not None or metrics.inference_ms is not None:
        rows.append(("metrics", f"queue {metrics.queue_ms} ms, inference {metrics.inference_ms} ms"))
    if prediction.output is not None:
        output = prediction.output
        rows.append(("output", f"{output.model}: {len(output.embeddings)} x {output.dimensions} dims"))
    elif prediction.output_url:
        rows.append(("output", "too large to inline: behind output_url (use --json for the link)"))
    if prediction.error is not None:
        rows.append(("error", f"{prediction.error.code}: {prediction.error.message}"))
    return "".join(f"{name:<13}{value}\n" for name, value in rows)


async def _get(ctx: Context) -> int:
    async with ctx.client() as client:
        if ctx.args.wait:
            prediction = await client.predictions.wait(ctx.args.id, fetch_output=False)
        else:
            prediction = await client.predictions.get(ctx.args.id)
    if ctx.json:
        ctx.emit(prediction.to_dict())
    else:
        ctx.stdout.write(_describe(prediction))
    return EXIT_OK


async def _list(ctx: Context) -> int:
    args = ctx.args
    predictions: list[Prediction] = []
    cursor = args.cursor
    async with ctx.client() as client:
        while True:
            page = await client.predictions.list(status=args.status, limit=args.limit, cursor=cursor)
            predictions.extend(page.data)
            cursor = page.next_cursor
            if not args.all or cursor is None:
                break
    if ctx.json:
        ctx.emit({"data": [p.to_dict() for p in predictions], "next_cursor": cursor})
        return EXIT_OK
    for p in predictions:
        ctx.stdout.write(f"{p.id}  {p.status.value:<9}  {p.raw.get('created_at', '')}  {p.input_count:>3} inputs\n")
    if cursor is not None:
        ctx.stderr.write(f"more: inference predictions list --cursor {cursor} (or --all)\n")
    return EXIT_OK


async def _cancel(ctx: Context) -> int:
    async with ctx.client() as client:
        prediction = await client.predictions.cancel(ctx.args.id)
    if ctx.json:
        ctx.emit(prediction.to_dict())
    else:
        ctx.stdout.write(f"{prediction.id} {prediction.status.value}\n")
    return EXIT_OK


# -- errors and main ---------------------------------------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, UsageError | InvalidInputError):
        return EXIT_USAGE
    if isinstance(exc, ConfigurationError):
        return EXIT_CONFIG
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, APIConnectionError | CircuitOpenError | ServerError | RateLimitError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, PredictionError | WaitTimeoutError):
        return EXIT_PREDICTION_FAILED
    return EXIT_ERROR


def _error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, APIError):
        return exc.to_dict()
    codes: list[tuple[type[BaseException], str]] = [
        (UsageError, "usage"),
        (InvalidInputError, "invalid_input"),
        (ConfigurationError, "configuration"),
        (CircuitOpenError, "circuit_open"),
        (APIConnectionError, "connection_error"),
        (PredictionError, "prediction_failed"),
        (WaitTimeoutError, "wait_timeout"),
    ]
    code = next((name for cls, name in codes if isinstance(exc, cls)), "client_error")
    details: dict[str, Any] | None = None
    if isinstance(exc, PredictionError):
        details = {"prediction": exc.prediction.to_dict()}
    elif isinstance(exc, CircuitOpenError):
        details = {"retry_after": exc.retry_after, "consecutive_failures": exc.consecutive_failures}
    return {"error": {"code": code, "message": str(exc), "details": details}}


def _hint(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return f" (check {API_KEY_ENV} or --api-key)"
    if isinstance(exc, APIConnectionError | CircuitOpenError):
        return f" (is the API up? check {API_URL_ENV} or --api-url)"
    return ""


def _configure_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("inference_client")
    log.addHandler(handler)
    # Quiet by default (an expected failure is one `error:` line); -v: retries and the breaker; -vv: requests.
    log.setLevel(logging.ERROR if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args, bool(getattr(args, "json", False)), sys.stdout, sys.stderr)
    _configure_logging(args.verbose)
    command: Callable[[Context], Coroutine[Any, Any, int]] = args.run
    try:
        return asyncio.run(command(ctx))
    except KeyboardInterrupt:
        resume = ""
        if ctx.progress.output is not None:
            resume = f"; {ctx.progress.written} written to {ctx.progress.output}, rerun the same command to resume"
        sys.stderr.write(f"interrupted{resume}\n")
        return EXIT_INTERRUPTED
    except (InferenceError, UsageError) as exc:
        code = exit_code_for(exc)
        if ctx.json:
            sys.stderr.write(json.dumps({**_error_body(exc), "exit_code": code}) + "\n")
        else:
            sys.stderr.write(f"error: {exc}{_hint(exc)}\n")
        return code
    except BrokenPipeError:
        # The reader went away (`inference embed ... --json | head`): not an error worth a traceback. Point stdout
        # at /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
