"""S3 access: batch inputs, batch outputs and large results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import translate
from inference_core.dal.clients import cached_factory, s3
from inference_core.settings import get_settings

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import CompletedPartTypeDef


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


def batch_hits_key(batch_id: str) -> str:
    """The outputs the dispatcher took from the result cache for a batch (finished, or with gaps for the model)."""
    return f"{get_settings().batch_output_prefix}{batch_id}.hits.jsonl"


def batch_merged_key(batch_id: str) -> str:
    """Completion's outputs of predictions that were part cached, part computed: the gaps filled in."""
    return f"{get_settings().batch_output_prefix}{batch_id}.merged.jsonl"


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

    def size(self, key: str) -> int | None:
        """The object's size in bytes; None when there is no such object."""
        try:
            return int(s3().head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise translate(exc, "could not read from S3") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not read from S3") from exc

    def lines(self, key: str, max_line_bytes: int) -> Iterator[bytes]:
        """The object's lines as a stream (JSON Lines framing: split on \\n only, a trailing \\r dropped),
        never more than one read buffer and one line in memory. A line longer than `max_line_bytes` is cut
        there and yielded as is (its caller refuses it), so a file with no newline cannot exhaust memory."""
        try:
            body = s3().get_object(Bucket=self.bucket, Key=key)["Body"]
            pending = b""
            skipping = False  # inside the rest of a line already cut and yielded
            for block in body.iter_chunks(1024 * 1024):
                pieces = (pending + block).split(b"\n")
                pending = pieces.pop()
                for piece in pieces:
                    if skipping:
                        skipping = False
                        continue
                    yield piece.removesuffix(b"\r")
                if len(pending) > max_line_bytes:
                    if not skipping:
                        yield pending[: max_line_bytes + 1]
                        skipping = True
                    pending = b""
            if pending and not skipping:
                yield pending.removesuffix(b"\r")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read from S3") from exc

    def delete(self, key: str) -> None:
        try:
            s3().delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not delete from S3") from exc

    def presigned_put(self, key: str, content_type: str, expires_in: int) -> str:
        """A URL that lets its holder write this one key, with this content type, until it expires."""
        return s3().generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_in,
        )

    def writer(self, key: str, content_type: str) -> StreamingWriter:
        return StreamingWriter(self.bucket, key, content_type)

    def presigned_get(self, location: str, expires_in: int) -> str:
        bucket, key = parse_s3_uri(location)
        return s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)


class StreamingWriter:
    """Writes one object of any size from a stream of pieces, holding at most one part (8 MiB) in memory: a
    multipart upload once the data passes a part, a single PUT below that. Nothing is visible until `close`."""

    PART_BYTES = 8 * 1024 * 1024

    def __init__(self, bucket: str, key: str, content_type: str) -> None:
        self.bucket, self.key, self.content_type = bucket, key, content_type
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.bytes_written += len(data)
        if len(self.buffer) >= self.PART_BYTES:
            self._upload_part()

    def _upload_part(self) -> None:
        try:
            if self.upload_id is None:
                self.upload_id = s3().create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, ContentType=self.content_type
                )["UploadId"]
            number = len(self.parts) + 1
            response = s3().upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer)
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not write to S3") from exc
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.buffer.clear()

    def close(self) -> str:
        try:
            if self.upload_id is None:
                s3().put_object(
                    Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer), ContentType=self.content_type
                )
                return s3_uri(self.bucket, self.key)
            if self.buffer:
                self._upload_part()
            s3().complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not write to S3") from exc
        return s3_uri(self.bucket, self.key)

    def abort(self) -> None:
        if self.upload_id is not None:
            # On failure the bucket's lifecycle rule removes the abandoned upload after a day.
            with contextlib.suppress(ClientError, BotoCoreError):
                s3().abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)

    def __enter__(self) -> StreamingWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()


@cached_factory
def object_store() -> ObjectStore:
    return ObjectStore(get_settings().bucket_name)
