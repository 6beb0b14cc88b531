"""A webhook delivered through the local stack to a loopback receiver, verified with the reference package."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


class Receiver(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()


def test_a_prediction_with_a_webhook_is_delivered_signed(stack: RunningStack, receiver: str) -> None:
    key = stack.create_key(f"hooks-{uuid.uuid4().hex[:8]}")
    with stack.api(key) as api:
        secret = api.get("/v1/webhooks/secret").json()["secret"]
        created = api.post("/v1/predictions", json={"inputs": "ring the bell", "webhook": receiver}).json()
        deadline = time.monotonic() + 60
        while not Receiver.seen and time.monotonic() < deadline:
            time.sleep(0.2)
        final = api.get(f"/v1/predictions/{created['id']}").json()
        log = api.get(f"/v1/predictions/{created['id']}/webhook_deliveries").json()["data"]

    assert Receiver.seen, "no delivery reached the receiver"
    headers, body = Receiver.seen[0]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "prediction.completed"
    assert payload["data"]["id"] == created["id"]
    assert payload["data"]["output"] == final["output"]
    assert [entry["status_code"] for entry in log] == [200]
