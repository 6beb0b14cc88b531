"""`make demo`: a few predictions against a running `make run`, with embeddings, similarities and timings, and a
webhook delivered to a loopback receiver and verified."""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from inference_client import (
    APIConnectionError,
    AuthenticationError,
    CircuitOpenError,
    Client,
    InferenceError,
    PredictionStatus,
    WebhookVerificationError,
    verify_webhook,
)

from local_stack.runner import REPO, read_env_file

SENTENCES = [
    "A cat sleeps on the sofa.",
    "A kitten naps on the couch.",
    "The stock market fell sharply today.",
    "Shares dropped at the close of trading.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_stack.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir", type=Path, default=REPO / ".local", help="where `make run` wrote env and api-key"
    )
    state = parser.parse_args(argv).state_dir
    env = read_env_file(state / "env") if (state / "env").is_file() else {}
    if "API_URL" not in env or not (state / "api-key").is_file():
        print("no local stack found: start it with `make run` in another terminal", file=sys.stderr)
        return 1
    url = env["API_URL"]
    try:  # a quick probe first (no retries), so a stack that is not running is named at once
        health = httpx.get(f"{url}/health", timeout=5)
    except httpx.TransportError:
        print(f"no local stack answers at {url}: start `make run` first", file=sys.stderr)
        return 1
    if health.status_code != 200:
        print(
            f"{url}/health answers {health.status_code}: that is not the local stack; start `make run` first",
            file=sys.stderr,
        )
        return 1
    with Client(url, (state / "api-key").read_text().strip(), timeout=30) as client:
        try:
            return run_demo(client) or webhook_demo(client)
        except InferenceError as exc:
            print(failure_message(exc, url, state), file=sys.stderr)
            return 1


def failure_message(exc: InferenceError, url: str, state: Path) -> str:
    """One line for a failure of the client during the demo (it has already retried what can be retried)."""
    if isinstance(exc, APIConnectionError | CircuitOpenError):
        return f"the local stack at {url} stopped answering ({type(exc).__name__}): is `make run` still running?"
    if isinstance(exc, AuthenticationError):
        return (
            f"the API at {url} refused the key in {state}/api-key ({exc}): "
            "is that stack the one `make run` started last?"
        )
    return f"error: {exc}"


def run_demo(client: Client) -> int:
    started = time.perf_counter()
    prediction = client.predictions.create(SENTENCES, metadata={"source": "make demo"}, wait=20)
    if not prediction.is_terminal:  # still queued or running after the 20 s the API holds the reply
        prediction = client.predictions.wait(prediction, timeout=60)
    elapsed = time.perf_counter() - started
    if prediction.status != PredictionStatus.SUCCEEDED or prediction.output is None:
        print(f"prediction {prediction.id} is {prediction.status}: {prediction.error}", file=sys.stderr)
        return 1
    output = prediction.output
    vectors = np.array(output.embeddings)
    print(
        f"prediction {prediction.id}: {prediction.status} in {elapsed:.2f}s "
        f"(queue {prediction.metrics.queue_ms} ms, inference {prediction.metrics.inference_ms} ms)"
    )
    print(f"model {output.model}, {output.dimensions} dimensions\n")
    for sentence, vector in zip(SENTENCES, vectors, strict=True):
        print(f"  {sentence:<42} [{', '.join(f'{v:+.4f}' for v in vector[:4])}, ...]")
    similarity = vectors @ vectors.T
    print("\ncosine similarity")
    for i, sentence in enumerate(SENTENCES):
        print(f"  {sentence[:28]:<30}" + " ".join(f"{similarity[i, j]:6.3f}" for j in range(len(SENTENCES))))

    burst_started = time.perf_counter()
    ids = [client.predictions.create(f"burst text {i}").id for i in range(20)]  # no wait: submitted back to back
    pending = set(ids)
    while pending and time.perf_counter() - burst_started < 60:
        pending = {i for i in pending if not client.predictions.get(i).is_terminal}
        if pending:
            time.sleep(0.2)
    print(
        f"\n20 single-text predictions submitted back to back finished in "
        f"{time.perf_counter() - burst_started:.2f}s ({len(pending)} unfinished)"
    )
    return 0


class _Receiver(http.server.BaseHTTPRequestHandler):
    deliveries: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.deliveries.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def webhook_demo(client: Client) -> int:
    """A receiver on loopback (the local stack allows plain http there), a prediction that names it, and the
    delivery checked with the tenant's secret as any receiver would."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        secret = client.webhooks.secret()
        prediction = client.predictions.create("Ring me when you are done.", webhook=url)
        deadline = time.monotonic() + 30
        while not _Receiver.deliveries and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.shutdown()
    if not _Receiver.deliveries:
        print(f"\nno webhook delivery for {prediction.id} within 30 s", file=sys.stderr)
        return 1
    headers, body = _Receiver.deliveries[0]
    try:
        event = verify_webhook(headers, body, secret)
    except WebhookVerificationError as exc:
        print(f"\nthe webhook delivery did not verify: {exc}", file=sys.stderr)
        return 1
    print(f"\nwebhook {headers.get('webhook-id')} -> {url}: {event['type']} for {event['data']['id']}, signature ok")
    print(f"  webhook-signature: {headers.get('webhook-signature', '')[:40]}...")
    print(f"  body: {json.dumps(event)[:160]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
