"""S3 access: batch inputs, batch outputs and large results."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from inference_core.dal.clients import client
from inference_core.errors import NotFoundError, TransientError
from inference_core.settings import get_settings


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise ValueError(f"not an s3:// location: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


class ObjectStore:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @property
    def _s3(self) -> Any:
        return client("s3")

    def put(self, key: str, body: bytes, content_type: str) -> str:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except ClientError as exc:
            raise TransientError("could not write to S3", {"key": key}) from exc
        return s3_uri(self.bucket, key)

    def read(self, location: str, max_bytes: int) -> bytes:
        """Read an object named by s3:// URI, refusing anything larger than max_bytes."""
        bucket, key = parse_s3_uri(location)
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NoSuchBucket"}:
                raise NotFoundError("object not found", {"location": location}) from exc
            raise TransientError("could not read from S3", {"location": location}) from exc
        if int(response.get("ContentLength", 0)) > max_bytes:
            raise ValueError(f"object larger than {max_bytes} bytes: {location}")
        body: bytes = response["Body"].read()
        return body

    def presigned_get(self, location: str, expires_in: int) -> str:
        bucket, key = parse_s3_uri(location)
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url


@cache
def object_store() -> ObjectStore:
    return ObjectStore(get_settings().bucket_name)
