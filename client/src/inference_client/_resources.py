"""`client.predictions`, `client.jobs` and `client.webhooks`, written once as operations (see `_operations`).
`Predictions` and `AsyncPredictions` (and so on) are these classes with a driver."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from inference_client._base import (
    ERROR_URL_LABEL,
    OUTPUT_URL_LABEL,
    UPLOAD_URL_LABEL,
    BaseClient,
    JobProgressCallback,
    UploadProgressCallback,
    create_body,
    given,
    job_body,
    new_idempotency_key,
    read_blocks,
    upload_size,
    wait_header,
)
from inference_client._operations import Emit, Operation, Stream, operation, stream
from inference_client.errors import APIError, JobError, ResponseFormatError
from inference_client.models import Job, JobDownload, JobPage, Page, Prediction, PredictionPage, PredictionStatus

EXPIRED_LINK_STATUSES = (400, 403)
"""What S3 answers for a presigned link past its expiry (403 AccessDenied; 400 for some signature errors)."""


ItemT = TypeVar("ItemT")


def follow_cursor(list_page: Callable[[str | None], Operation[Page[ItemT]]]) -> Stream[ItemT]:
    """Every item of every page, following `next_cursor` from the first page until it is null."""
    cursor: str | None = None
    while True:
        page = yield from list_page(cursor)
        for item in page.data:
            yield Emit(item)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class Resource:
    """A part of the API (`client.predictions`, ...): its operations send through the client, and run on its
    driver."""

    def __init__(self, client: BaseClient) -> None:
        self._client = client
        self._io = client._io


class PredictionsBase(Resource):
    """Create, get, list, cancel and wait for predictions."""

    @operation
    def create(
        self,
        inputs: str | Sequence[str],
        *,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
    ) -> Operation[Prediction]:
        """Submit a prediction. `wait` (seconds, at most 20) holds the reply until it finishes; the returned
        prediction may still be queued or running (then `wait()` for it). An Idempotency-Key is generated when none
        is given and reused by every retry, so a retry never creates a second prediction."""
        body = create_body(inputs, parameters, metadata, webhook)
        key = idempotency_key or new_idempotency_key()
        data = yield from self._client._json(
            "POST", "/v1/predictions", body=body, idempotency_key=key, wait=wait_header(wait)
        )
        return Prediction.from_api(data)

    @operation
    def get(self, prediction_id: str, *, fetch_output: bool = False) -> Operation[Prediction]:
        """One prediction, as the API has it. `fetch_output`: read an output kept behind `output_url` too."""
        prediction = yield from self._client._get(prediction_id)
        return (yield from self._client._with_output(prediction)) if fetch_output else prediction

    @operation
    def cancel(self, prediction_id: str) -> Operation[Prediction]:
        """Cancel a queued or running prediction (cancelling twice is fine; a finished one is a ConflictError)."""
        data = yield from self._client._json(
            "POST", f"/v1/predictions/{prediction_id}/cancel", idempotency_key=new_idempotency_key()
        )
        return Prediction.from_api(data)

    @operation
    def wait(
        self, prediction: str | Prediction, *, timeout: float | None = None, fetch_output: bool = True
    ) -> Operation[Prediction]:
        """Poll until the prediction is succeeded, failed, cancelled or expired (WaitTimeoutError after `timeout`
        seconds). A failed one is returned, not raised. `fetch_output`: read an output kept behind `output_url`."""
        current = (yield from self._client._get(prediction)) if isinstance(prediction, str) else prediction
        current = yield from self._client._wait(current, timeout=timeout)
        return (yield from self._client._with_output(current)) if fetch_output else current

    @stream
    def iterate(self, *, status: PredictionStatus | str | None = None, page_size: int = 100) -> Stream[Prediction]:
        """Every prediction (newest first, without outputs), following `next_cursor` until it is null."""
        yield from follow_cursor(
            lambda cursor: PredictionsBase.list(self, status=status, limit=page_size, cursor=cursor)
        )

    @operation
    def list(
        self, *, status: PredictionStatus | str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Operation[PredictionPage]:
        """One page, newest first, without outputs. A page can hold fewer than `limit` items (even none) and still
        have a `next_cursor`: keep following it until it is None (or use `iterate`)."""
        params = given(status=None if status is None else str(status), limit=limit, cursor=cursor)
        data = yield from self._client._json("GET", "/v1/predictions", params=params)
        return PredictionPage.from_api(data)


class JobsBase(Resource):
    """Bulk jobs over a JSONL file: create (and upload), get, list, cancel, retry, wait, download."""

    @operation
    def create(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        webhook: str | None = None,
        dry_run: bool = False,
        progress: UploadProgressCallback | None = None,
        idempotency_key: str | None = None,
    ) -> Operation[Job]:
        """Create a job for the JSONL file at `path` and upload the file, which starts the job.

        The POST carries an Idempotency-Key reused by each of its retries. The upload streams the file from disk
        (memory stays bounded for any size) to the presigned link with exactly the headers it was signed with and
        no API key, and is retried on connection errors and 5xx: a PUT of the same bytes to the same key is
        idempotent. `progress(bytes_sent, total)` follows it. Returns the job as read after the upload (it can
        still be `awaiting_upload` for a moment: the API notices the file asynchronously). A job whose upload
        failed stays `awaiting_upload` until it expires; create another."""
        file = Path(path)
        size = upload_size(file)  # before the POST: an unreadable or empty file creates nothing
        body = job_body(metadata, webhook, dry_run)
        key = idempotency_key or new_idempotency_key()
        job = Job.from_api((yield from self._client._json("POST", "/v1/jobs", body=body, idempotency_key=key)))
        if job.upload is None:
            raise ResponseFormatError(f"job {job.id} was created without an upload link")
        yield from self._client._send(
            job.upload.method,
            "",
            external_url=job.upload.url,
            external_label=UPLOAD_URL_LABEL,
            external_headers={**job.upload.headers, "Content-Length": str(size)},  # not chunked: S3 needs a length
            content=lambda: read_blocks(file, size, progress),
        )
        return (yield from JobsBase.get(self, job.id))

    @operation
    def get(self, job_id: str) -> Operation[Job]:
        """One job, as the API has it now (its result links are fresh: they last 15 minutes)."""
        return Job.from_api((yield from self._client._json("GET", f"/v1/jobs/{job_id}")))

    @operation
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Operation[JobPage]:
        """One page of the caller's jobs, newest first (API jobs, inbox jobs and retries)."""
        data = yield from self._client._json("GET", "/v1/jobs", params=given(limit=limit, cursor=cursor))
        return JobPage.from_api(data)

    @stream
    def iterate(self, *, page_size: int = 100) -> Stream[Job]:
        """Every job, newest first, following `next_cursor` until it is null."""
        yield from follow_cursor(lambda cursor: JobsBase.list(self, limit=page_size, cursor=cursor))

    @operation
    def cancel(self, job_id: str) -> Operation[Job]:
        """Stop launching the job's chunks (cancelling twice is fine; a finished job is a ConflictError). Chunks
        already running finish and are kept: the job is `cancelling`, then `cancelled` with its files."""
        key = new_idempotency_key()
        return Job.from_api((yield from self._client._json("POST", f"/v1/jobs/{job_id}/cancel", idempotency_key=key)))

    @operation
    def retry(self, job_id: str) -> Operation[Job]:
        """A new job of only the lines that failed (`parent_id` set). ConflictError if the job has not finished or
        has no failed lines."""
        key = new_idempotency_key()
        return Job.from_api((yield from self._client._json("POST", f"/v1/jobs/{job_id}/retry", idempotency_key=key)))

    @operation
    def wait(
        self, job: str | Job, *, timeout: float | None = None, progress: JobProgressCallback | None = None
    ) -> Operation[Job]:
        """Poll with backoff (0.5 s doubling to 5 s) until the job is completed, failed, cancelled, expired or
        validated (a dry run); one that failed is returned, not raised. `progress(job)` is called with the job as
        first seen and after every poll. WaitTimeoutError after `timeout` seconds."""
        current = (yield from JobsBase.get(self, job)) if isinstance(job, str) else job
        read = lambda job_id: JobsBase.get(self, job_id)  # noqa: E731
        return (yield from self._client._poll(current, read, timeout, kind="job", progress=progress))

    @operation
    def download(
        self,
        job: str | Job,
        *,
        output: str | os.PathLike[str] | None = None,
        errors: str | os.PathLike[str] | None = None,
    ) -> Operation[JobDownload]:
        """Stream a finished job's output file to `output` and its error file to `errors` (each through
        `<path>.part`, renamed when complete). A link that expired (400/403) is renewed once per file by reading
        the job again. JobError if the job has not finished. Returns the job as last read and the paths written
        (None for a file not asked for, or one the job does not have)."""
        if isinstance(job, Job) and job.is_terminal:
            current = job
        else:
            current = yield from JobsBase.get(self, job if isinstance(job, str) else job.id)
        if not current.is_terminal:
            message = f"job {current.id} is {current.status.value}: its result files are not written yet (wait for it)"
            raise JobError(current, message)
        current, output_path = yield from self._fetch(current, "output", output)
        current, errors_path = yield from self._fetch(current, "errors", errors)
        return JobDownload(current, output_path, errors_path)

    def _fetch(self, job: Job, kind: str, target: str | os.PathLike[str] | None) -> Operation[tuple[Job, Path | None]]:
        url, label = _file_link(job, kind)
        if target is None or url is None:
            return job, None
        path = Path(target)
        try:
            yield from self._client._download(url, label, path)
        except APIError as exc:
            if exc.status_code not in EXPIRED_LINK_STATUSES:
                raise
            job = yield from JobsBase.get(self, job.id)  # fresh links; a second refusal is raised
            url, label = _file_link(job, kind)
            if url is None:
                return job, None
            yield from self._client._download(url, label, path)
        return job, path


def _file_link(job: Job, kind: str) -> tuple[str | None, str]:
    """The presigned link of the job's `output` or `errors` file, and its label for logs and errors."""
    if kind == "output":
        return job.output_url, OUTPUT_URL_LABEL
    return job.error_url, ERROR_URL_LABEL


class WebhooksBase(Resource):
    """The tenant's signing secret, for `verify_webhook` on the receiving side."""

    @operation
    def secret(self) -> Operation[str]:
        """The `whsec_...` secret that signs this tenant's deliveries (made on first read)."""
        return _secret_of((yield from self._client._json("GET", "/v1/webhooks/secret")))

    @operation
    def rotate_secret(self) -> Operation[str]:
        """A new secret; deliveries are signed with the old one too for 24 hours."""
        key = new_idempotency_key()
        return _secret_of((yield from self._client._json("POST", "/v1/webhooks/secret/rotate", idempotency_key=key)))


def _secret_of(document: Any) -> str:
    """The `secret` of a /v1/webhooks/secret answer, checked to be in the whsec_ format."""
    secret = document.get("secret") if isinstance(document, dict) else None
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ResponseFormatError("the webhook secret is not in the whsec_ format")
    return secret
