"""The local stack's moto SQS patch: receives honour retention without rebuilding the queue's attributes."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.moto_fixes import fast_sqs_receive


def test_a_receive_does_not_rebuild_queue_attributes_and_still_drops_expired_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import moto.sqs.models as sqs_models

    fast_sqs_receive()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="expired")
        backend = sqs_models.sqs_backends["123456789012"]["us-east-1"]
        backend.get_queue("q")._messages[0].sent_timestamp = int((time.time() - 120) * 1000)  # type: ignore[assignment]
        sqs.send_message(QueueUrl=url, MessageBody="fresh")

        def rebuilds(*_: Any, **__: Any) -> Any:
            raise AssertionError("ReceiveMessage rebuilt the queue's attributes")

        monkeypatch.setattr(sqs_models.SQSBackend, "get_queue_attributes", rebuilds)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])

    # as before the patch, moto's receive stops at the first message past retention: the expired one is not delivered
    assert received == []
