"""`inference jobs submit | get | list | cancel | retry | download`: bulk jobs over a JSONL file. `submit` is
resumable: a rerun for the same file picks up the job it made."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from inference_client.async_client import AsyncClient
from inference_client.cli.common import (
    EXIT_CODES,
    EXIT_OK,
    Context,
    UsageError,
    list_command,
    list_options,
    positive_float,
    progress_bar,
    rows,
)
from inference_client.errors import JobError
from inference_client.models import Job, JobDownload, JobPage, JobProgress, JobSource, JobStatus

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


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
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
    list_options(job_list)
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


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-timeout", type=positive_float, default=None, help="stop waiting after this many seconds"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (shown only on a terminal)")


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
    fields = [("id", job.id), ("status", job.status.value + (" (dry run)" if job.dry_run else ""))]
    if job.source is JobSource.INBOX:
        fields.append(("source", f"inbox: {job.input_location or '?'}"))
    elif job.source is JobSource.RETRY:
        fields.append(("source", f"retry of {job.parent_id}"))
    fields += [
        ("created_at", job.raw.get("created_at") or ""),
        ("started_at", job.raw.get("started_at") or "-"),
        ("completed_at", job.raw.get("completed_at") or "-"),
        ("lines", f"{counts.total} total: {counts.completed} completed, {counts.failed} failed"),
    ]
    if not job.is_terminal and counts.total:
        pace = _pace(job.progress)
        fields.append(("progress", f"{job.progress.fraction:.0%}" + (f" at {pace}" if pace else "")))
    if job.metadata:
        fields.append(("metadata", ", ".join(f"{k}={v}" for k, v in job.metadata.items())))
    if job.estimate is not None:
        e = job.estimate
        fields.append(
            (
                "estimate",
                f"{e.inputs} inputs, ~{e.tokens} tokens, {e.endpoint_seconds:g} s of endpoint time, "
                f"${e.cost_usd:.4f}, about {_duration(e.eta_seconds)}",
            )
        )
    if job.error is not None:
        fields.append(("error", f"{job.error.code}: {job.error.message}"))
    for item in job.errors:
        where = f"line {item.line}" + (f" ({item.custom_id})" if item.custom_id else "")
        fields.append(("invalid", f"{where}: {item.error.code}: {item.error.message}"))
    return rows(fields)


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
                ctx.stdout.write(rows([("output", f"{files.output} ({counts.completed} lines)")]))
            if files.errors is not None:
                ctx.stdout.write(rows([("errors", f"{files.errors} ({counts.failed} lines)")]))
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
            update, close_bar = progress_bar(
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
    ctx.show(job, _describe_job(job))
    return EXIT_OK


async def _jobs_list(ctx: Context) -> int:
    def read_page(client: AsyncClient, cursor: str | None) -> Awaitable[JobPage]:
        return client.jobs.list(limit=ctx.args.limit, cursor=cursor)

    def line(job: Job) -> str:
        counts = job.request_counts
        label = job.metadata.get(FILE_NAME_KEY) or job.input_location or (job.parent_id and f"retry of {job.parent_id}")
        return (
            f"{job.id}  {job.status.value:<15}  {job.raw.get('created_at', '')}  "
            f"{counts.processed:>7}/{counts.total:<7} lines  {label or job.source.value}\n"
        )

    return await list_command(ctx, "jobs", read_page, line)


async def _jobs_cancel(ctx: Context) -> int:
    job = await ctx.call(lambda client: client.jobs.cancel(ctx.args.id))
    ctx.show(job, f"{job.id} {job.status.value}\n")
    return EXIT_OK


async def _jobs_retry(ctx: Context) -> int:
    job = await ctx.call(lambda client: client.jobs.retry(ctx.args.id))
    ctx.show(job, f"{job.id} {job.status.value} (retry of {job.parent_id})\n")
    return EXIT_OK


async def _jobs_download(ctx: Context) -> int:
    args = ctx.args
    targets = _targets(args.output, args.errors, Path(args.id))
    files = await ctx.call(lambda client: _download(client, args.id, targets))
    _report(ctx, files.job, files)
    return EXIT_OK
