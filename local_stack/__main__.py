"""`make run`: the whole pipeline on loopback until Ctrl-C or SIGTERM.

python -m local_stack [--port 8000] [--param Name=Value ...] [--visibility-timeout 30] [--verbose]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local_stack.runner import REPO, LocalStack, Options


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="local_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="the API's port")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".local", help="where api-key and env are written")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a template.yaml parameter"
    )
    parser.add_argument(
        "--visibility-timeout", type=int, help="seconds before a failed record comes back (default: the template's)"
    )
    parser.add_argument("--batching-window", type=float, help="override the dispatcher's batching window (seconds)")
    parser.add_argument("--pollers", type=int, default=2, help="concurrent pollers per function")
    parser.add_argument("--verbose", action="store_true", help="show the functions' logs and the model server's")
    args = parser.parse_args(argv)
    parameters = dict(item.split("=", 1) for item in args.param)
    return Options(
        host=args.host,
        api_port=args.port,
        state_dir=args.state_dir,
        parameters=parameters,
        visibility_timeout=args.visibility_timeout,
        batching_window=args.batching_window,
        pollers_per_function=args.pollers,
        verbose=args.verbose,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    logging.basicConfig(level=logging.INFO if options.verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's per-request lines
    stop = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stack = LocalStack(options)
    console = sys.stdout
    if not options.verbose:
        # The functions' JSON logs and metrics go to a file; the terminal shows only the stack's own lines.
        options.state_dir.mkdir(parents=True, exist_ok=True)
        sys.stdout = (options.state_dir / "functions.log").open("a", buffering=1)
    try:
        stack.start()
        print(
            f"Local stack up in {stack.startup_seconds:.1f}s\n"
            f"  API           {stack.urls['api']}  (docs: {stack.urls['api']}/docs)\n"
            f"  AWS (moto)    {stack.urls['aws']}\n"
            f"  SageMaker     {stack.urls['sagemaker']}  (local async endpoint)\n"
            f"  API key       {(options.state_dir / 'api-key').read_text().strip()}\n"
            f"  Written to    {options.state_dir}/api-key and {options.state_dir}/env\n"
            f"  Function logs {'this terminal' if options.verbose else options.state_dir / 'functions.log'}\n"
            "Try: make demo    Stop: Ctrl-C",
            file=console,
            flush=True,
        )
        stop.wait()
    finally:
        print("stopping...", file=console, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
