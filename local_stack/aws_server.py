"""moto server in a process of its own: `python -m local_stack.aws_server HOST PORT`.

In AWS, S3, SQS, DynamoDB and SNS are not on the functions' CPU. In one process with the API and the pumps, moto's
request handling (about half of the local stack's CPU under load) would hold the GIL that the functions need, so one
tenant's burst would slow everyone's requests for a reason AWS does not have. It runs until SIGTERM or SIGINT, and
the parent starts it so that it dies with the parent.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from moto.server import ThreadedMotoServer

from local_stack.moto_fixes import fast_dispatch, fast_sqs_receive, serialize_dynamodb


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    serialize_dynamodb()  # atomic transactions, as the product relies on
    fast_sqs_receive()  # receives that do not slow down as a queue grows, as SQS's
    fast_dispatch()
    import os

    if os.environ.get("MOTO_WSGI") == "waitress":
        import waitress
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        waitress.serve(DomainDispatcherApplication(create_backend_app), host=host, port=port, threads=16, _quiet=True)
        return 0
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
