"""Builds events in the exact shapes AWS sends: SQS batches for Lambda, SageMaker async notifications."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """Lambda's SQS event for messages as returned by ReceiveMessage (with AttributeNames=All)."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                    "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def async_notification(
    *,
    inference_id: str,
    endpoint_name: str,
    input_location: str,
    output_location: str | None = None,
    failure_location: str | None = None,
    failure_reason: str | None = None,
    received: datetime | None = None,
    region: str = "us-east-1",
) -> str:
    """The JSON SageMaker publishes to the success topic (output_location) or the error topic (failure_reason)."""
    now = datetime.now(UTC)
    document: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _timestamp(now),
        "receivedTime": _timestamp(received or now),
        "invocationStatus": "Failed" if failure_reason is not None else "Completed",
        "requestParameters": {
            "contentType": "application/jsonlines",
            "endpointName": endpoint_name,
            "inputLocation": input_location,
        },
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }
    if failure_reason is not None:
        document["failureReason"] = failure_reason
        document["responseParameters"] = {"contentType": "text/plain; charset=utf-8"}
        if failure_location:
            document["responseParameters"]["failureLocation"] = failure_location
    else:
        document["responseParameters"] = {"contentType": "application/jsonlines", "outputLocation": output_location}
    return json.dumps(document)
