"""`inference embed`: embeddings for texts given as arguments, or one per line of a file, into JSON lines (an
output file is resumable: a rerun skips the lines already in it)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from inference_client.chunking import check_text
from inference_client.cli.common import (
    EXIT_CODES,
    EXIT_OK,
    Context,
    UsageError,
    positive_float,
    positive_int,
    progress_bar,
)

_RECORD = re.compile(rb'^\{"line":([0-9]+),"embedding":\[.*\]\}\r?\n$', re.DOTALL)


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
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
    embed.add_argument("--concurrency", type=positive_int, default=4, help="requests in flight at once (4)")
    embed.add_argument("--rate", type=positive_float, default=None, help="at most this many requests per second")
    embed.add_argument("--no-normalize", action="store_true", help="raw mean-pooled vectors, not L2-normalised")
    embed.add_argument("--no-cache", action="store_true", help="bypass the server's result cache")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    embed.add_argument(
        "--wait-timeout", type=positive_float, default=None, help="give up on a request after this many seconds"
    )
    embed.set_defaults(run=_embed)


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
    update, close_bar = progress_bar(len(todo), not args.no_progress)
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
