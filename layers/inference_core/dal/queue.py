"""SQS access: the two request queues (lanes) that feed the dispatcher, their dead letters, and job commands."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory, sqs
from inference_core.domain.batches import WorkItem
from inference_core.domain.limits import Lane
from inference_core.errors import PayloadTooLargeError
from inference_core.settings import get_settings

MAX_MESSAGE_BYTES = 256 * 1024


class RequestQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    @staticmethod
    def encode(work: WorkItem) -> str:
        """The message body for a work item, checked before anything is written: SQS refuses U+FFFE and U+FFFF
        (valid text, but outside its character set), so those are JSON-escaped, and the size must fit a message."""
        body = work.to_json().replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise PayloadTooLargeError(f"the request does not fit one queue message ({MAX_MESSAGE_BYTES} bytes)")
        return body

    def send(self, body: str) -> str:
        try:
            response = sqs().send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not enqueue the prediction") from exc
        return response["MessageId"]


class DeadLetterQueue:
    """The request DLQ, read without consuming: messages stay for operators to inspect or redrive."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def peek(self, rounds: int, hide_seconds: int) -> list[str]:
        """Up to `rounds` x 10 message bodies; each seen message is hidden for `hide_seconds`, so the next
        sweeps see the others."""
        bodies: list[str] = []
        try:
            for _ in range(rounds):
                response = sqs().receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=hide_seconds, WaitTimeSeconds=0
                )
                messages = response.get("Messages", [])
                bodies += [m.get("Body", "") for m in messages]
                if len(messages) < 10:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the dead-letter queue") from exc
        return bodies


@cached_factory
def request_dead_letters() -> DeadLetterQueue:
    return DeadLetterQueue(get_settings().request_dlq_url)


@cached_factory
def request_queue() -> RequestQueue:
    return RequestQueue(get_settings().request_queue_url)


@cached_factory
def backlog_queue() -> RequestQueue:
    return RequestQueue(get_settings().backlog_queue_url)


def lane_queue(lane: Lane) -> RequestQueue:
    return backlog_queue() if lane is Lane.BACKLOG else request_queue()


def lane_of_source(event_source_arn: str) -> Lane:
    """The lane an SQS event came from (its queue's ARN ends with the queue's name, as the URL does)."""
    backlog_name = get_settings().backlog_queue_url.rstrip("/").rsplit("/", 1)[-1]
    return Lane.BACKLOG if event_source_arn.rsplit(":", 1)[-1] == backlog_name else Lane.INTERACTIVE


class JobCommandQueue:
    """The job intake queue: S3 sends ObjectCreated events here, and the API and functions send commands
    (assemble a cancelled job, build a retry job) so that long work never runs inside an API request."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, command: str, job_id: str) -> None:
        body = json.dumps({"command": command, "job_id": job_id})
        try:
            sqs().send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not queue the job command") from exc


@cached_factory
def job_commands() -> JobCommandQueue:
    return JobCommandQueue(get_settings().job_intake_queue_url)
