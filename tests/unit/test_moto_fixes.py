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


def test_a_delete_stops_at_its_message_and_keeps_sqs_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.sqs.models as sqs_models

    fast_sqs_receive()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
        for n in range(50):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        first = sqs.receive_message(QueueUrl=url)["Messages"][0]
        again = sqs.receive_message(QueueUrl=url)["Messages"][0]  # visibility 0: the same message, a new handle
        assert again["MessageId"] == first["MessageId"]

        def scans(*_: Any, **__: Any) -> Any:
            raise AssertionError("DeleteMessage scanned every message's receipt handles")

        monkeypatch.setattr(sqs_models.Message, "had_receipt_handle", scans)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # an older handle still deletes
        sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])  # a second delete is accepted
        result = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": "not-a-handle"}])
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])

    assert [f["Code"] for f in result["Failed"]] == ["ReceiptHandleIsInvalid"]
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "49"
