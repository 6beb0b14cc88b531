"""The local stack's SQS pollers: a function whose event sources are disabled takes no messages."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from local_stack.pumps import Poller, PumpSpec, PumpStats


class _Queue:
    """An SQS stand-in that always has one message ready."""

    def __init__(self) -> None:
        self.receives = 0

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receives += 1
        n = self.receives
        return {"Messages": [{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": "{}", "Attributes": {}}]}

    def delete_message_batch(self, **_: Any) -> None:
        pass


def _poller(tmp_path: Path, queue: _Queue, stop: threading.Event) -> Poller:
    handler = tmp_path / "handler.py"
    handler.write_text("def handler(event, context):\n    return None\n")
    spec = PumpSpec(
        function="Fn",
        event="Queue",
        queue_url="http://queue",
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
        batch_size=1,
        window_seconds=0,
        reports_failures=False,
        handler_file=handler,
        handler_name="handler",
    )
    return Poller(spec, 0, queue, stop, PumpStats())


def test_a_disabled_poller_takes_nothing_until_enabled(tmp_path: Path) -> None:
    queue, stop = _Queue(), threading.Event()
    poller = _poller(tmp_path, queue, stop)
    poller.disabled.set()
    poller.start()
    try:
        time.sleep(0.3)
        assert queue.receives == 0
        assert poller.stats.invocations == 0
        poller.disabled.clear()
        deadline = time.monotonic() + 5
        while poller.stats.invocations == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert poller.stats.invocations >= 1
    finally:
        stop.set()
        poller.join(timeout=5)
