"""S3 access: batch inputs, batch outputs and large results."""

from __future__ import annotations

from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory, s3
from inference_core.settings import get_settings


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"not an s3:// location: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def batch_input_key(batch_id: str) -> str:
    """Where a batch's input object lives (its name follows from the batch id alone)."""
    return f"{get_settings().batch_input_prefix}{batch_id}.jsonl"


def batch_output_key(batch_id: str) -> str:
    """Where the endpoint writes a batch's output: the dispatcher names it (`Filename`) after the batch."""
    return f"{get_settings().batch_output_prefix}{batch_id}.out"


def batch_failure_prefix(batch_id: str) -> str:
    """The endpoint's failure object for a batch starts with this (the name after it is SageMaker's)."""
    return f"{get_settings().batch_failure_prefix}{batch_id}"


class ObjectTooLarge(ValueError):
    """An object is larger than the reader is willing to hold in memory."""


class ObjectStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return s3_uri(self.bucket, key)

    def put(self, key: str, body: bytes, content_type: str) -> str:
        try:
            s3().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not write to S3") from exc
        return s3_uri(self.bucket, key)

    def read(self, location: str, max_bytes: int) -> bytes:
        """Read an object named by s3:// URI, refusing anything larger than max_bytes."""
        bucket, key = parse_s3_uri(location)
        try:
            response = s3().get_object(Bucket=bucket, Key=key)
            if int(response.get("ContentLength", 0)) > max_bytes:
                response["Body"].close()
                raise ObjectTooLarge(f"object larger than {max_bytes} bytes: {location}")
            body: bytes = response["Body"].read()
            return body
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read from S3") from exc

    def find(self, prefix: str) -> str | None:
        """The location of the first object under `prefix` in this bucket, if any."""
        try:
            response = s3().list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list S3") from exc
        contents = response.get("Contents") or []
        return s3_uri(self.bucket, contents[0]["Key"]) if contents else None

    def presigned_get(self, location: str, expires_in: int) -> str:
        bucket, key = parse_s3_uri(location)
        return s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)


@cached_factory
def object_store() -> ObjectStore:
    return ObjectStore(get_settings().bucket_name)
