"""The API builds a group of routes on the first request under its paths; /openapi.json still documents them all."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import create_model

from inference_api.app import ROUTE_GROUPS, RouteGroups, create_app
from inference_api.openapi import replies
from inference_api.schemas import ErrorResponse

ROOT = Path(__file__).resolve().parents[2]


def _loaded(client: TestClient) -> frozenset[str]:
    groups: RouteGroups = client.app.state.route_groups  # type: ignore[attr-defined]
    return groups.loaded


def test_every_route_module_is_a_group_whose_paths_start_with_its_prefixes() -> None:
    modules = {path.stem for path in (ROOT / "api" / "inference_api" / "routes").glob("*.py")} - {"__init__"}
    assert set(ROUTE_GROUPS) == modules
    for group, prefixes in ROUTE_GROUPS.items():
        paths = [route.path for route in importlib.import_module(f"inference_api.routes.{group}").router.routes]
        assert paths, group
        # The loader picks the group by prefix: a route outside them would 404 until another request loaded it.
        assert [path for path in paths if not path.startswith(prefixes)] == [], group


def test_a_request_builds_only_its_own_group_once() -> None:
    app = create_app()
    client = TestClient(app)
    assert _loaded(client) == set()
    assert client.get("/health").json() == {"status": "ok"}
    assert _loaded(client) == {"health"}
    routes = len(app.router.routes)
    assert client.get("/health").status_code == 200
    assert len(app.router.routes) == routes
    assert client.get("/v1/predictions").status_code == 401  # no key: refused before anything is read
    assert client.get("/v1/predictions/not-an-id").status_code == 401
    assert _loaded(client) == {"health", "predictions"}
    assert client.get("/v1/nowhere").status_code == 404
    assert client.delete("/health").status_code == 405  # the group is there before the router matches
    assert _loaded(client) == {"health", "predictions"}


def test_behind_a_stage_prefix_the_group_is_found_by_its_route_path() -> None:
    client = TestClient(create_app(), root_path="/prod")
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/v1/models").status_code == 401
    assert _loaded(client) == {"health", "openai_compat"}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_openapi_documents_every_group_and_every_reference_resolves() -> None:
    client = TestClient(create_app())
    client.get("/health")  # one group loaded early does not hide the others
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pydantic's, for a model built late in an unsupported context
        document = client.get("/openapi.json").json()
    assert _loaded(client) == set(ROUTE_GROUPS)
    for prefixes in ROUTE_GROUPS.values():
        for prefix in prefixes:
            assert any(path.startswith(prefix) for path in document["paths"]), prefix
    schemas = document["components"]["schemas"]
    assert {ref.removeprefix("#/components/schemas/") for ref in _refs(document)} <= set(schemas)
    reply = document["paths"]["/v1/predictions"]["post"]["responses"]
    assert reply["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert reply["429"]["description"] == "Too Many Requests"
    assert schemas["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    embeddings = document["paths"]["/v1/embeddings"]["post"]["responses"]
    assert embeddings["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIError"}
    assert "OpenAIErrorBody" in schemas


def test_importing_the_handler_builds_no_route_group() -> None:
    """The cold start (bench/coldstart.py) imports the handler; each group waits for its first request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "api"), str(ROOT / "layers")])
    check = "import sys, inference_api.handler; print(sorted(m for m in sys.modules if '.routes.' in m))"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT / "api", env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_two_documented_models_of_one_name_are_refused() -> None:
    replies(ErrorResponse, 400)  # the same model again is fine
    impostor = create_model("ErrorResponse", detail=(str, ...))
    with pytest.raises(ValueError, match="named ErrorResponse"):
        replies(impostor, 400)
