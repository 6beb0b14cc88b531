"""Documented replies by schema reference, and the OpenAPI document that defines what they reference.

FastAPI builds a serializer (a pydantic TypeAdapter) for every `{"model": X}` entry of every route's `responses`:
about 200 for this API's error replies (some 40 ms of its cold start), used only to write /openapi.json. `replies`
names the schema instead, and `install` adds the named models to the document when it is first built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

_SCHEMA_REF = "#/components/schemas/{model}"
_referenced: dict[str, type[BaseModel]] = {}


def replies(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for `statuses`, each a JSON body of `model`."""
    if _referenced.setdefault(model.__name__, model) is not model:
        raise ValueError(f"two documented models are named {model.__name__}: rename one")
    ref = _SCHEMA_REF.format(model=model.__name__)
    return {status: {"content": {"application/json": {"schema": {"$ref": ref}}}} for status in statuses}


def install(app: FastAPI, before: Callable[[], None] = lambda: None) -> None:
    """`app.openapi()` also defines every model `replies` referenced; `before` runs first (it loads the routes)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        before()
        document = build()  # cached by FastAPI as app.openapi_schema: completed in place
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, model in sorted(_referenced.items()):
            if name in schemas:
                continue  # a route's response_model defined it already
            schema = model.model_json_schema(ref_template=_SCHEMA_REF, mode="serialization")
            for nested, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(nested, definition)
            schemas[name] = schema
        document["components"]["schemas"] = dict(sorted(schemas.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
