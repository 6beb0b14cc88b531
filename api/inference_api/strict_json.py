"""Every JSON body the API reads is checked before FastAPI parses it: size, valid UTF-8, no lone surrogates
(escaped or raw), and bounded nesting. One mechanism for every route, so no text that cannot be stored, queued or
sent to the model is ever accepted, and no body can drive the parser or a validator into deep recursion. All of it
is linear in the body's size (the C JSON parser and one iterative walk), and it runs before authentication."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from inference_api.errors import InvalidTextError, TooDeeplyNestedError
from inference_core.errors import PayloadTooLargeError

# Keeps a whole request inside one SQS message (256 KiB) with room for the envelope.
MAX_BODY_BYTES = 200 * 1024
# POST /v1/embeddings: under Lambda's 6 MB request payload once API Gateway has base64-encoded it.
LARGE_BODY_BYTES = 4 * 1024 * 1024
# POST /v1/files: room for the multipart framing and the form fields around the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_json_body(raw: bytes, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Raises a 4xx-mapped error for a body that is too large, is not valid Unicode text, or nests too deeply.
    A body that is not JSON at all is left to the framework, which answers `malformed_json`."""
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(f"the body is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")  # strict: refuses encoded surrogates (ED A0 80) and overlong forms
    except UnicodeDecodeError as exc:
        raise InvalidTextError("the body is not valid UTF-8", {"position": exc.start}) from exc
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise TooDeeplyNestedError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError:
        return
    problem = _find_problem(document)
    if problem == "depth":
        raise TooDeeplyNestedError(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if problem is not None:
        raise InvalidTextError("a string holds a lone surrogate: it is not valid Unicode text", {"location": problem})


def _find_problem(document: Any) -> list[str | int] | str | None:
    """ "depth" if containers nest deeper than MAX_JSON_DEPTH, else the location of the first string (or object
    key) holding an unpaired surrogate, else None. Iterative, so depth itself cannot recurse."""
    pending: list[tuple[list[str | int], Any, int]] = [(["body"], document, 0)]
    while pending:
        path, value, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                return "depth"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    return path
                pending.append(([*path, key], item, depth + 1))
    return None


class StrictJsonRoute(APIRoute):
    """An APIRoute that checks the raw body first (Starlette caches it, so FastAPI reads it again for free)."""

    max_body_bytes = MAX_BODY_BYTES

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            body = await request.body()
            if body:
                check_json_body(body, self.max_body_bytes)
            return await handler(request)

        return checked


class LargeJsonRoute(StrictJsonRoute):
    """The same checks with the larger bodies of POST /v1/embeddings (many texts in one request, never queued
    whole: they are split into predictions)."""

    max_body_bytes = LARGE_BODY_BYTES
