"""Files of the OpenAI-compatible API: upload a batch input (checked line by line before anything is stored),
read, list, download and delete; a batch's output and error files are registered here when it is assembled.

An uploaded file is one object under the files prefix (no S3 event starts anything there) and one record; the
object is written first, so a record never points at nothing, and a file refused is never stored at all."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from inference_core.dal.files import file_store
from inference_core.dal.objects import object_store
from inference_core.dal.table import InvalidCursor
from inference_core.domain.clock import utc_now
from inference_core.domain.files import DEFAULT_EXPIRY, MAX_EXPIRY, MIN_EXPIRY, FilePurpose, StoredFile
from inference_core.domain.openai_dialect import (
    MAX_BATCH_INPUTS,
    MAX_BATCH_REQUESTS,
    InvalidRequest,
    is_file_id,
    result_file_id,
)
from inference_core.errors import NotFoundError, PayloadTooLargeError, ValidationFailedError
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

CONTENT_TYPE = "application/jsonl"
MAX_FILENAME_CHARS = 255
MAX_LIST = 10_000


@dataclass(frozen=True)
class FilePage:
    files: list[StoredFile]
    has_more: bool


@dataclass(frozen=True)
class Content:
    """A file's bytes, or (past what one Lambda response carries) a short-lived link to them."""

    body: bytes | None
    url: str | None


def upload(
    tenant_id: str,
    filename: str,
    content: bytes,
    purpose: str,
    expires_after: tuple[str, int] | None = None,
    now: datetime | None = None,
) -> StoredFile:
    now = now or utc_now()
    if purpose != FilePurpose.BATCH.value:
        raise ValidationFailedError(
            f"purpose must be 'batch' (the only use of files here), not {purpose[:40]!r}", {"param": "purpose"}
        )
    name = _checked_filename(filename)
    limit = get_settings().file_max_bytes
    if len(content) > limit:
        raise PayloadTooLargeError(
            f"the file is {len(content)} bytes; a file holds at most {limit} (larger inputs: POST /v1/jobs)",
            {"param": "file"},
        )
    if not content.strip():
        raise ValidationFailedError("the file is empty", {"param": "file"})
    check_batch_file(content)
    file_id = f"file-{uuid.uuid4().hex}"
    stored = StoredFile(
        id=file_id,
        tenant_id=tenant_id,
        filename=name,
        purpose=FilePurpose.BATCH,
        bytes=len(content),
        created_at=now,
        expires_at=now + _expiry(expires_after),
        object_key=f"{get_settings().file_prefix}{tenant_id}/{file_id}.jsonl",
    )
    object_store().put(stored.object_key, content, CONTENT_TYPE)
    file_store().create(stored)
    logger.info("file uploaded", file_id=file_id, size_bytes=len(content))
    metrics.add_metric(name="FilesUploaded", unit=MetricUnit.Count, value=1)
    return stored


def _checked_filename(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > MAX_FILENAME_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValidationFailedError(
            f"the file needs a name of 1 to {MAX_FILENAME_CHARS} printable characters", {"param": "file"}
        )
    return name


def _expiry(expires_after: tuple[str, int] | None) -> timedelta:
    if expires_after is None:
        return DEFAULT_EXPIRY
    anchor, seconds = expires_after
    if anchor != "created_at":
        raise ValidationFailedError("expires_after[anchor] must be 'created_at'", {"param": "expires_after"})
    expiry = timedelta(seconds=seconds)
    if not MIN_EXPIRY <= expiry <= MAX_EXPIRY:
        raise ValidationFailedError(
            f"expires_after[seconds] must be between {int(MIN_EXPIRY.total_seconds())} and "
            f"{int(MAX_EXPIRY.total_seconds())}",
            {"param": "expires_after"},
        )
    return expiry


def check_batch_file(content: bytes) -> None:
    """Every line a POST of an embeddings request with its own custom_id, within OpenAI's bounds; the first line
    at fault is named. The bodies are checked when the batch runs: a bad body fails its own line only."""
    # Here, not at the top: the request models are pydantic, and the sweeper imports this module for result files.
    from inference_core.domain.openai_requests import check_target, parse_request_line

    seen: set[bytes] = set()
    requests = inputs = 0
    for number, raw in enumerate(content.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        try:
            line = parse_request_line(raw)
            check_target(line)
        except InvalidRequest as exc:
            raise ValidationFailedError(f"line {number}: {exc.message}", {"param": "file", "line": number}) from exc
        digest = hashlib.blake2b(line.custom_id.encode(), digest_size=16).digest()
        if digest in seen:
            raise ValidationFailedError(
                f"line {number}: custom_id {line.custom_id[:64]!r} is used by an earlier line; each must be unique",
                {"param": "file", "line": number},
            )
        seen.add(digest)
        requests += 1
        inputs += _input_count(line.body.get("input"))
        if requests > MAX_BATCH_REQUESTS:
            raise ValidationFailedError(
                f"the file holds more than {MAX_BATCH_REQUESTS} requests", {"param": "file", "line": number}
            )
        if inputs > MAX_BATCH_INPUTS:
            raise ValidationFailedError(
                f"the file holds more than {MAX_BATCH_INPUTS} embedding inputs in all", {"param": "file"}
            )
    if requests == 0:
        raise ValidationFailedError("the file holds no requests", {"param": "file"})


def _input_count(value: Any) -> int:
    if isinstance(value, list) and value and not all(isinstance(item, int) for item in value):
        return len(value)
    return 1


def get(tenant_id: str, file_id: str, now: datetime | None = None) -> StoredFile:
    """A file of this tenant; another tenant's, an expired or a deleted one answers as unknown."""
    found = file_store().get(file_id) if is_file_id(file_id) else None
    if found is None or found.tenant_id != tenant_id or found.expired(now or utc_now()):
        raise NotFoundError(f"No such File object: {file_id[:64]}", {"param": "file_id"})
    return found


def list_for_tenant(
    tenant_id: str,
    limit: int,
    after: str | None,
    newest_first: bool = True,
    purpose: str | None = None,
    now: datetime | None = None,
) -> FilePage:
    now = now or utc_now()
    start = None
    if after is not None:
        start = file_store().get(after) if is_file_id(after) else None
        if start is None or start.tenant_id != tenant_id:
            raise ValidationFailedError(f"after: no such file {after[:64]!r}", {"param": "after"})
    try:
        files, more = file_store().list_for_tenant(
            tenant_id,
            limit,
            start,
            newest_first,
            keep=lambda f: not f.expired(now) and (purpose is None or f.purpose.value == purpose),
        )
    except InvalidCursor as exc:
        raise ValidationFailedError(str(exc), {"param": "after"}) from exc
    return FilePage(files, more)


def content(tenant_id: str, file_id: str) -> Content:
    found = get(tenant_id, file_id)
    settings = get_settings()
    objects = object_store()
    if found.bytes > settings.inline_output_max_bytes:
        return Content(None, objects.presigned_get(objects.uri(found.object_key), settings.presigned_url_seconds))
    try:
        return Content(objects.read(objects.uri(found.object_key), settings.inline_output_max_bytes), None)
    except NotFoundError as exc:
        raise NotFoundError(f"No such File object: {file_id}", {"param": "file_id"}) from exc


def delete(tenant_id: str, file_id: str) -> str:
    """The bytes first, then the record: a file half deleted is still listed and can be deleted again."""
    found = get(tenant_id, file_id)
    object_store().delete(found.object_key)
    file_store().delete(found.id)
    logger.info("file deleted", file_id=found.id)
    return found.id


def register_result_file(
    tenant_id: str, job_id: str, kind: str, object_key: str, filename: str, now: datetime
) -> str | None:
    """A batch's output or error file (`kind`), once written: its id is derived from the job, so a second
    assembly registers nothing new. None when the file holds no lines (OpenAI leaves the id null then)."""
    size = object_store().size(object_key)
    if not size:
        return None
    file_id = result_file_id(job_id, kind)
    stored = StoredFile(
        id=file_id,
        tenant_id=tenant_id,
        filename=filename,
        purpose=FilePurpose.BATCH_OUTPUT,
        bytes=size,
        created_at=now,
        expires_at=now + DEFAULT_EXPIRY,
        object_key=object_key,
    )
    file_store().create(stored)
    return file_id
