"""/v1/files in OpenAI's shapes: upload a batch input (multipart, `purpose=batch`), list, read, download, delete.
A batch's output and error files are files here too (`purpose: batch_output`). Files of other tenants are 404."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from inference_api.auth import Tenant
from inference_api.routes.openai_compat import OPENAI_ERRORS
from inference_api.strict_json import FORM_OVERHEAD_BYTES
from inference_core.domain.files import StoredFile
from inference_core.errors import PayloadTooLargeError
from inference_core.logic import openai_files
from inference_core.settings import get_settings


class FileRoute(APIRoute):
    """Refuses a body larger than one file and its form before the multipart parser reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            limit = get_settings().file_max_bytes
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD_BYTES:
                raise PayloadTooLargeError(f"a file holds at most {limit} bytes", {"param": "file"})
            return await handler(request)

        return checked


router = APIRouter(prefix="/v1/files", route_class=FileRoute, tags=["openai-compatible"], responses=OPENAI_ERRORS)


class FileOut(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    expires_at: int | None
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def _present(stored: StoredFile) -> FileOut:
    return FileOut(
        id=stored.id,
        bytes=stored.bytes,
        created_at=int(stored.created_at.timestamp()),
        filename=stored.filename,
        purpose=stored.purpose.value,
        expires_at=int(stored.expires_at.timestamp()),
    )


@router.post("", response_model=FileOut)
async def upload_file(
    tenant: Tenant,
    file: Annotated[UploadFile, File(description="A JSONL file of batch requests.")],
    purpose: Annotated[str, Form(description="`batch`, the only purpose files have here.")],
    expires_after_anchor: Annotated[str | None, Form(alias="expires_after[anchor]")] = None,
    expires_after_seconds: Annotated[int | None, Form(alias="expires_after[seconds]")] = None,
) -> FileOut:
    """Every line is checked before anything is stored (a POST to /v1/embeddings with a unique custom_id, at most
    50,000 requests and 50,000 inputs): a file refused is not kept. Bodies are checked when the batch runs."""
    limit = get_settings().file_max_bytes
    content = await file.read(limit + 1)
    expires = None
    if expires_after_anchor is not None or expires_after_seconds is not None:
        expires = (expires_after_anchor or "", expires_after_seconds or 0)
    stored = await asyncio.to_thread(openai_files.upload, tenant, file.filename or "", content, purpose, expires)
    return _present(stored)


@router.get("", response_model=FileList)
def list_files(
    tenant: Tenant,
    after: Annotated[str | None, Query(max_length=64, description="The last file id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=openai_files.MAX_LIST)] = openai_files.MAX_LIST,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    purpose: Annotated[str | None, Query(max_length=40)] = None,
) -> FileList:
    page = openai_files.list_for_tenant(tenant, limit, after, order == "desc", purpose)
    data = [_present(stored) for stored in page.files]
    return FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )


@router.get("/{file_id}", response_model=FileOut)
def get_file(file_id: str, tenant: Tenant) -> FileOut:
    return _present(openai_files.get(tenant, file_id))


@router.get(
    "/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 307: {"description": "A link to large files."}},
)
def file_content(file_id: str, tenant: Tenant) -> Response:
    """The file's bytes; past what one Lambda response carries (about 4 MB), a 307 to a short-lived link (the SDK
    follows it, without our key)."""
    found = openai_files.content(tenant, file_id)
    if found.url is not None:
        return RedirectResponse(found.url, status_code=307)
    return Response(content=found.body or b"", media_type="application/octet-stream")


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, tenant: Tenant) -> FileDeleted:
    return FileDeleted(id=openai_files.delete(tenant, file_id), deleted=True)
