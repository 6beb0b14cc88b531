"""The `inference` command: embeddings for texts or a file (resumable), predictions get / list / cancel, and bulk
jobs (submit a JSONL file, resumable; get / list / cancel / retry / download). One module per command group
(`embed`, `predictions`, `jobs`); `common` holds what they share.

An expected failure (bad key, API down, bad input) prints one `error:` line (with `--json`, one JSON object) on
stderr and exits with a code scripts can test; see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from inference_client._base import API_KEY_ENV, API_URL_ENV
from inference_client._version import __version__
from inference_client.async_client import AsyncClient
from inference_client.cli import embed, jobs, predictions
from inference_client.cli.common import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_PREDICTION_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Context,
    UsageError,
    positive_float,
)
from inference_client.cli.common import EXIT_OK as EXIT_OK
from inference_client.cli.embed import resume_state as resume_state
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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help=f"the API's base URL (default: ${API_URL_ENV})")
    common.add_argument(
        "--api-key", help=f"the API key (default: ${API_KEY_ENV}; prefer the variable: arguments show in `ps`)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output (errors too, on stderr)")
    common.add_argument("--timeout", type=positive_float, default=30.0, help="seconds per HTTP request (30)")
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
    for group in (embed, predictions, jobs):
        group.add_commands(commands, common)
    return parser


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
    # AsyncClient as this module has it now: tests put a fake API behind it.
    ctx = Context(args, bool(getattr(args, "json", False)), sys.stdout, sys.stderr, connect=AsyncClient)
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
