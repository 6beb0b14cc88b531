"""The `inference` command: embeddings for texts or a file (resumable), predictions get / list / cancel, and bulk
jobs (submit a JSONL file, resumable; get / list / cancel / retry / download).

An expected failure (bad key, API down, bad input) prints one `error:` line (with `--json`, one JSON object) on
stderr and exits with a code scripts can test; see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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
    JobError,
    NotFoundError,
    PermissionDeniedError,
    PredictionError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from inference_client.models import Job, JobDownload, JobProgress, JobSource, JobStatus, Prediction, PredictionStatus

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

_RECORD = re.compile(rb'^\{"line":([0-9]+),"embedding":\[.*\]\}\r?\n$', re.DOTALL)
# What `jobs submit` records on a job so that a rerun for the same file finds it instead of uploading it again.
FILE_NAME_KEY = "file_name"
FILE_SHA256_KEY = "file_sha256"
RESUME_PAGES = 2  # pages of 100 jobs (newest first) searched for an earlier submission of the same file
# An earlier job of the same file is picked up unless it can no longer give results: `awaiting_upload` is skipped
# too (its one-hour upload link was only in the reply that created it, so nothing can finish it).
_NOT_RESUMABLE = frozenset(
    {JobStatus.AWAITING_UPLOAD, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.CANCELLED, JobStatus.EXPIRED}
)
_UNSUCCESSFUL = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})


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
    progress: Progress = field(default_factory=Progress)

    def client(self) -> AsyncClient:
        return AsyncClient(self.args.api_url, self.args.api_key, timeout=self.args.timeout)

    def emit(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")

    def note(self, message: str) -> None:
        """A line for the person at the terminal, on stderr; none with --json (stderr is then for the error)."""
        if not self.json:
            self.stderr.write(message + "\n")


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
    embed.add_argument("--no-cache", action="store_true", help="bypass the server's result cache")
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

    jobs = commands.add_parser("jobs", help="bulk jobs: submit a JSONL file, follow it, download its results")
    job_actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = job_actions.add_parser(
        "submit",
        parents=[common],
        help="upload a JSONL file as a job (resumable)",
        description='Upload a JSONL file (one {"custom_id", "inputs"} object per line) as a bulk job. The job records '
        f"the file's name and SHA-256 ({FILE_NAME_KEY}, {FILE_SHA256_KEY} in its metadata): running the same command "
        "again for the same file picks up the newest such job that has not failed, been cancelled or expired, "
        "instead of uploading it again (--new: always a new job). With --wait (implied by --output or --errors), "
        "follows the job until it ends and downloads its files: each to --output / --errors, or, if neither is "
        "given, both beside FILE as <FILE stem>.output.jsonl and <FILE stem>.errors.jsonl.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("file", metavar="FILE", help="the JSONL file")
    submit.add_argument("--dry-run", action="store_true", help="validate the file and estimate the run; run nothing")
    submit.add_argument(
        "--metadata", action="append", default=[], metavar="KEY=VALUE", help="a label for the job (repeatable)"
    )
    submit.add_argument("--webhook", help="an https:// URL to notify when the job ends (passed to the API)")
    submit.add_argument("--wait", action="store_true", help="follow the job until it ends, then download its files")
    submit.add_argument("--output", metavar="OUT", help="download the output file here (implies --wait)")
    submit.add_argument("--errors", metavar="ERR", help="download the error file here (implies --wait)")
    submit.add_argument("--no-download", action="store_true", help="with --wait: only wait, download nothing")
    submit.add_argument("--new", action="store_true", help="a new job even if this file was submitted before")
    _wait_options(submit)
    submit.set_defaults(run=_jobs_submit)
    job_get = job_actions.add_parser("get", parents=[common], help="show one job")
    job_get.add_argument("id")
    job_get.add_argument("--wait", action="store_true", help="follow it until it ends")
    _wait_options(job_get)
    job_get.set_defaults(run=_jobs_get)
    job_list = job_actions.add_parser("list", parents=[common], help="list jobs, newest first")
    job_list.add_argument("--limit", type=_positive_int, default=None, help="items per page (1..100, default 20)")
    job_list.add_argument("--cursor", help="next_cursor of the previous page")
    job_list.add_argument("--all", action="store_true", help="follow next_cursor to the end")
    job_list.set_defaults(run=_jobs_list)
    job_cancel = job_actions.add_parser("cancel", parents=[common], help="stop a job (what finished is kept)")
    job_cancel.add_argument("id")
    job_cancel.set_defaults(run=_jobs_cancel)
    job_retry = job_actions.add_parser("retry", parents=[common], help="a new job of a finished job's failed lines")
    job_retry.add_argument("id")
    job_retry.set_defaults(run=_jobs_retry)
    download = job_actions.add_parser(
        "download",
        parents=[common],
        help="download a finished job's output and error files",
        description="Download a finished job's files: each to --output / --errors, or, if neither is given, both to "
        "<id>.output.jsonl and <id>.errors.jsonl in the current directory.",
    )
    download.add_argument("id")
    download.add_argument("--output", metavar="OUT", help="write the output file here")
    download.add_argument("--errors", metavar="ERR", help="write the error file here")
    download.set_defaults(run=_jobs_download)
    return parser


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-timeout", type=_positive_float, default=None, help="stop waiting after this many seconds"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (shown only on a terminal)")


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


def _progress_bar(
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
                    cache=not args.no_cache,
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


# -- jobs --------------------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    if not minutes:
        return f"{secs}s"
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _pace(progress: JobProgress) -> str:
    """The API's own rate and ETA (from its counters), e.g. "12.5 lines/s, ETA 3m 05s"; empty until known."""
    parts = []
    if progress.items_per_second is not None:
        parts.append(f"{progress.items_per_second:g} lines/s")
    if progress.eta_seconds:
        parts.append(f"ETA {_duration(progress.eta_seconds)}")
    return ", ".join(parts)


def _job_bar(enabled: bool) -> tuple[Callable[[Job], None], Callable[[], None]]:
    """A tqdm bar on stderr (a terminal only) driven by the job's live counters: completed + failed of total, with
    the API's lines/s and ETA (tqdm's own estimate would be wrong: the counters move a chunk at a time). It appears
    with the first job that has not finished (none for a job already done)."""
    if not enabled or not sys.stderr.isatty():
        return (lambda _job: None), (lambda: None)
    bars: list[Any] = []

    def update(job: Job) -> None:
        if not bars:
            if job.is_terminal:
                return
            tqdm = importlib.import_module("tqdm").tqdm
            bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} lines{postfix}"
            total = job.request_counts.total or None  # unknown until the file is validated
            bars.append(
                tqdm(total=total, desc=job.status.value, file=sys.stderr, dynamic_ncols=True, bar_format=bar_format)
            )
        bar = bars[0]
        counts = job.request_counts
        if counts.total and bar.total != counts.total:
            bar.total = counts.total
        bar.n = counts.processed
        bar.set_description_str(job.status.value, refresh=False)
        bar.set_postfix_str(_pace(job.progress), refresh=False)
        bar.refresh()

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def _describe_job(job: Job) -> str:
    counts = job.request_counts
    rows = [("id", job.id), ("status", job.status.value + (" (dry run)" if job.dry_run else ""))]
    if job.source is JobSource.INBOX:
        rows.append(("source", f"inbox: {job.input_location or '?'}"))
    elif job.source is JobSource.RETRY:
        rows.append(("source", f"retry of {job.parent_id}"))
    rows += [
        ("created_at", job.raw.get("created_at") or ""),
        ("started_at", job.raw.get("started_at") or "-"),
        ("completed_at", job.raw.get("completed_at") or "-"),
        ("lines", f"{counts.total} total: {counts.completed} completed, {counts.failed} failed"),
    ]
    if not job.is_terminal and counts.total:
        pace = _pace(job.progress)
        rows.append(("progress", f"{job.progress.fraction:.0%}" + (f" at {pace}" if pace else "")))
    if job.metadata:
        rows.append(("metadata", ", ".join(f"{k}={v}" for k, v in job.metadata.items())))
    if job.estimate is not None:
        e = job.estimate
        rows.append(
            (
                "estimate",
                f"{e.inputs} inputs, ~{e.tokens} tokens, {e.endpoint_seconds:g} s of endpoint time, "
                f"${e.cost_usd:.4f}, about {_duration(e.eta_seconds)}",
            )
        )
    if job.error is not None:
        rows.append(("error", f"{job.error.code}: {job.error.message}"))
    for item in job.errors:
        where = f"line {item.line}" + (f" ({item.custom_id})" if item.custom_id else "")
        rows.append(("invalid", f"{where}: {item.error.code}: {item.error.message}"))
    return "".join(f"{name:<13}{value}\n" for name, value in rows)


def _metadata(pairs: Sequence[str]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--metadata takes KEY=VALUE, not {pair!r}")
        if key in (FILE_NAME_KEY, FILE_SHA256_KEY):
            raise UsageError(f"--metadata {key} is set by jobs submit (the file's name and SHA-256)")
        metadata[key] = value
    return metadata


def _file_digest(path: Path) -> tuple[int, str]:
    """The file's size and SHA-256, read in blocks (a job file can be a gigabyte)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise UsageError(f"{path} is empty: a job file needs at least one line")
    return size, digest.hexdigest()


Targets = tuple[Path | None, Path | None]
"""Where a job's output and error files go (None: not downloaded)."""


def _targets(output: str | None, errors: str | None, base: Path, source: Path | None = None) -> Targets:
    """The paths given, or, if neither is, `<base>.output.jsonl` and `<base>.errors.jsonl`. Checked now, before
    any waiting, so that a long job does not end in an unwritable path."""
    if output is None and errors is None:
        targets: Targets = (base.with_name(f"{base.name}.output.jsonl"), base.with_name(f"{base.name}.errors.jsonl"))
    else:
        targets = (Path(output) if output is not None else None, Path(errors) if errors is not None else None)
    for path in targets:
        if path is None:
            continue
        if path.is_dir():
            raise UsageError(f"{path} is a directory")
        if not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no such directory {path.parent}")
        if source is not None and path.resolve() == source.resolve():
            raise UsageError(f"{path} is the input file: write the results elsewhere")
    return targets


async def _submitted_before(client: AsyncClient, name: str, digest: str, dry_run: bool) -> Job | None:
    """The newest job this caller submitted for the same file (same name and SHA-256) that can still give
    results, among the newest RESUME_PAGES pages. Retries (a subset of the lines) and dry runs for a real run (or
    the reverse) do not count."""
    cursor: str | None = None
    for _ in range(RESUME_PAGES):
        page = await client.jobs.list(limit=100, cursor=cursor)
        for job in page.data:
            if (
                job.source is JobSource.API
                and job.metadata.get(FILE_NAME_KEY) == name
                and job.metadata.get(FILE_SHA256_KEY) == digest
                and job.dry_run == dry_run
                and job.status not in _NOT_RESUMABLE
            ):
                return job
        cursor = page.next_cursor
        if cursor is None:
            break
    return None


async def _follow(ctx: Context, client: AsyncClient, job: Job) -> Job:
    update, close_bar = _job_bar(not ctx.args.no_progress)
    try:
        return await client.jobs.wait(job, timeout=ctx.args.wait_timeout, progress=update)
    finally:
        close_bar()


async def _download(client: AsyncClient, job: str | Job, targets: Targets) -> JobDownload:
    try:
        return await client.jobs.download(job, output=targets[0], errors=targets[1])
    except OSError as exc:
        raise UsageError(f"cannot write {exc.filename or 'the file'}: {exc.strerror or exc}") from exc


def _report(ctx: Context, job: Job, files: JobDownload | None, **extra: Any) -> None:
    """The job and the files written, on stdout; then an error (exit 7) if the job ended without success."""
    if ctx.json:
        paths = {"output": files.output, "errors": files.errors} if files else {"output": None, "errors": None}
        ctx.emit({"job": job.to_dict(), **extra, "files": {k: str(v) if v else None for k, v in paths.items()}})
    else:
        ctx.stdout.write(_describe_job(job))
        if files is not None:
            counts = job.request_counts
            if files.output is not None:
                ctx.stdout.write(f"{'output':<13}{files.output} ({counts.completed} lines)\n")
            if files.errors is not None:
                ctx.stdout.write(f"{'errors':<13}{files.errors} ({counts.failed} lines)\n")
    if job.status in _UNSUCCESSFUL:
        raise JobError(job)


async def _jobs_submit(ctx: Context) -> int:
    args = ctx.args
    source = Path(args.file)
    metadata = _metadata(args.metadata)
    size, digest = await asyncio.to_thread(_file_digest, source)  # also: FILE is a readable, non-empty file
    wait = args.wait or args.output is not None or args.errors is not None
    download = wait and not args.no_download
    targets = _targets(args.output, args.errors, source.with_name(source.stem), source) if download else None
    metadata.update({FILE_NAME_KEY: source.name, FILE_SHA256_KEY: digest})
    async with ctx.client() as client:
        job = None if args.new else await _submitted_before(client, source.name, digest, args.dry_run)
        reused = job is not None
        if job is not None:
            ctx.note(
                f"reusing job {job.id} ({job.status.value}, created {job.raw.get('created_at')}): {source.name} was "
                "submitted before with the same SHA-256 (--new submits it again)"
            )
        else:
            update, close_bar = _progress_bar(
                size, not args.no_progress, unit="B", unit_scale=True, unit_divisor=1024, desc="upload"
            )
            try:
                job = await client.jobs.create(
                    source, metadata=metadata, webhook=args.webhook, dry_run=args.dry_run, progress=update
                )
            except OSError as exc:
                raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from exc
            finally:
                close_bar()
            ctx.note(f"uploaded {source.name} ({_size(size)}) as job {job.id}")
        ctx.progress.job_id = job.id
        files = None
        if wait:
            job = await _follow(ctx, client, job)
            if targets is not None:
                files = await _download(client, job, targets)
                job = files.job
    _report(ctx, job, files, reused=reused)
    return EXIT_OK


async def _jobs_get(ctx: Context) -> int:
    async with ctx.client() as client:
        job = await client.jobs.get(ctx.args.id)
        if ctx.args.wait:
            job = await _follow(ctx, client, job)
    if ctx.json:
        ctx.emit(job.to_dict())
    else:
        ctx.stdout.write(_describe_job(job))
    return EXIT_OK


async def _jobs_list(ctx: Context) -> int:
    args = ctx.args
    jobs: list[Job] = []
    cursor = args.cursor
    async with ctx.client() as client:
        while True:
            page = await client.jobs.list(limit=args.limit, cursor=cursor)
            jobs.extend(page.data)
            cursor = page.next_cursor
            if not args.all or cursor is None:
                break
    if ctx.json:
        ctx.emit({"data": [job.to_dict() for job in jobs], "next_cursor": cursor})
        return EXIT_OK
    for job in jobs:
        counts = job.request_counts
        label = job.metadata.get(FILE_NAME_KEY) or job.input_location or (job.parent_id and f"retry of {job.parent_id}")
        ctx.stdout.write(
            f"{job.id}  {job.status.value:<15}  {job.raw.get('created_at', '')}  "
            f"{counts.processed:>7}/{counts.total:<7} lines  {label or job.source.value}\n"
        )
    if cursor is not None:
        ctx.stderr.write(f"more: inference jobs list --cursor {cursor} (or --all)\n")
    return EXIT_OK


async def _jobs_cancel(ctx: Context) -> int:
    async with ctx.client() as client:
        job = await client.jobs.cancel(ctx.args.id)
    if ctx.json:
        ctx.emit(job.to_dict())
    else:
        ctx.stdout.write(f"{job.id} {job.status.value}\n")
    return EXIT_OK


async def _jobs_retry(ctx: Context) -> int:
    async with ctx.client() as client:
        job = await client.jobs.retry(ctx.args.id)
    if ctx.json:
        ctx.emit(job.to_dict())
    else:
        ctx.stdout.write(f"{job.id} {job.status.value} (retry of {job.parent_id})\n")
    return EXIT_OK


async def _jobs_download(ctx: Context) -> int:
    args = ctx.args
    targets = _targets(args.output, args.errors, Path(args.id))
    async with ctx.client() as client:
        files = await _download(client, args.id, targets)
    _report(ctx, files.job, files)
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
    if isinstance(exc, PredictionError | JobError | WaitTimeoutError):
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
        (JobError, "job_failed"),
        (WaitTimeoutError, "wait_timeout"),
    ]
    code = next((name for cls, name in codes if isinstance(exc, cls)), "client_error")
    details: dict[str, Any] | None = None
    if isinstance(exc, PredictionError):
        details = {"prediction": exc.prediction.to_dict()}
    elif isinstance(exc, JobError):
        code = "job_failed" if exc.job.is_terminal else "job_not_finished"
        details = {"job": exc.job.to_dict()}
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
        elif ctx.progress.job_id is not None:
            resume = f"; job {ctx.progress.job_id} goes on: rerun the same command to pick it up"
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
