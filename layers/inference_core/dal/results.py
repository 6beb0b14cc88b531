"""Where a prediction's output lives: a byte range of the batch output the endpoint wrote (read with one ranged
GET), or, for an output too large to inline in a response, an object of its own under the result prefix."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory, s3
from inference_core.dal.objects import ObjectStore, object_store, parse_s3_uri
from inference_core.domain.batches import ResultLine
from inference_core.domain.documents import InvalidDocument
from inference_core.errors import PermanentDependencyError
from inference_core.settings import get_settings


class ResultStore:
    def __init__(self, objects: ObjectStore, result_prefix: str) -> None:
        self.objects = objects
        self.result_prefix = result_prefix

    def put_standalone(self, prediction_id: str, output: dict[str, Any]) -> str:
        """Copy one output to its own object (served as a presigned link); returns its location."""
        body = json.dumps(output, separators=(",", ":")).encode()
        return self.objects.put(f"{self.result_prefix}{prediction_id}.json", body, "application/json")

    def put_line(self, prediction_id: str, output: dict[str, Any]) -> tuple[str, int]:
        """An output as a result line of its own (read like a line of a batch output); returns (location, size)."""
        body = json.dumps({"id": prediction_id, "output": output}, separators=(",", ":")).encode()
        return self.objects.put(f"{self.result_prefix}{prediction_id}.jsonl", body, "application/jsonlines"), len(body)

    def read_line(self, location: str, start: int, end: int) -> ResultLine:
        """The result line at bytes [start, end] of a batch output."""
        bucket, key = parse_s3_uri(location)
        try:
            body = s3().get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the output") from exc
        try:
            return ResultLine.from_json(body)
        except InvalidDocument as exc:
            raise PermanentDependencyError("the stored output is unreadable", reason="corrupt output line") from exc


@cached_factory
def result_store() -> ResultStore:
    return ResultStore(object_store(), get_settings().result_prefix)
