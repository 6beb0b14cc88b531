"""`make run`: the whole pipeline on loopback until Ctrl-C or SIGTERM.

python -m local_stack [--port 8000] [--param Name=Value ...] [--visibility-timeout 30] [--verbose]
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

from local_stack.runner import REPO, LocalStack, Options

STATE_NOTE = (
    "State is in memory: predictions and keys are gone when this stops; a new dev key is written to {state}/api-key "
    "on every start.\nAfter a restart the AWS endpoint's port changes too: `source {state}/env` again."
)


def port_number(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return port


def port_problem(host: str, port: int) -> str | None:
    """Why the API could not listen on host:port, or None when it can: a bind test, with the same SO_REUSEADDR as
    uvicorn, so a socket left in TIME_WAIT by a stack that just stopped does not count as taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            other = port + 1 if port < 65535 else port - 1
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use: stop what is using it, or run `make run PORT={other}`"
            return f"cannot listen on port {port} on {host} ({exc.strerror}): run `make run PORT={other}`"
    return None


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="local_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=8000, help="the API's port")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".local", help="where api-key and env are written")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a template.yaml parameter"
    )
    parser.add_argument(
        "--visibility-timeout", type=int, help="seconds before a failed record comes back (default: the template's)"
    )
    parser.add_argument("--batching-window", type=float, help="override the dispatcher's batching window (seconds)")
    parser.add_argument("--pollers", type=int, default=2, help="concurrent pollers per function")
    parser.add_argument(
        "--schedule-interval", type=float, default=10.0, help="seconds between runs of scheduled functions (sweeper)"
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="instances of the local endpoint (they share one model server)"
    )
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
        schedule_interval=args.schedule_interval,
        endpoint_instances=max(1, args.instances),
        verbose=args.verbose,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # Before anything starts (moto, the model server): a taken port would otherwise fail seconds later, deep inside.
    problem = port_problem(options.host, options.api_port)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 2
    logging.basicConfig(level=logging.INFO if options.verbose else logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's per-request lines
    stop = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stack = LocalStack(options)
    console = sys.stdout
    print(f"Starting the local stack (API on http://{options.host}:{options.api_port})...", file=console, flush=True)
    if not options.verbose:
        # The functions' JSON logs and metrics go to a file; the terminal shows only the stack's own lines.
        options.state_dir.mkdir(parents=True, exist_ok=True)
        sys.stdout = (options.state_dir / "functions.log").open("a", buffering=1)
    try:
        stack.start()
        print(summary(stack, options), file=console, flush=True)
        stop.wait()
    except RuntimeError as exc:  # the stack's own startup failures say what went wrong and what to try
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping...", file=console, flush=True)
        stack.stop()
    return 0


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when it lies inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(stack: LocalStack, options: Options) -> str:
    state = shown(options.state_dir)
    return (
        f"Local stack up in {stack.startup_seconds:.1f}s\n"
        f"  API           {stack.urls['api']}  (docs: {stack.urls['api']}/docs)\n"
        f"  AWS (moto)    {stack.urls['aws']}\n"
        f"  SageMaker     {stack.urls['sagemaker']}  (local async endpoint)\n"
        f"  API key       {(options.state_dir / 'api-key').read_text().strip()}\n"
        f"  Written to    {state}/api-key and {state}/env\n"
        f"  Function logs {'this terminal' if options.verbose else f'{state}/functions.log'}\n"
        f"{STATE_NOTE.format(state=state)}\n"
        "Try: make demo    Stop: Ctrl-C"
    )


if __name__ == "__main__":
    sys.exit(main())
