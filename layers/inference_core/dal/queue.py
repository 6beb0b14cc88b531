"""SQS access: the request queue that feeds the dispatcher."""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from inference_core.dal.clients import client
from inference_core.errors import TransientError
from inference_core.settings import get_settings


class RequestQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, body: str) -> str:
        sqs: Any = client("sqs")
        try:
            response = sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except ClientError as exc:
            raise TransientError("could not enqueue the prediction") from exc
        message_id: str = response["MessageId"]
        return message_id


@cache
def request_queue() -> RequestQueue:
    return RequestQueue(get_settings().request_queue_url)
