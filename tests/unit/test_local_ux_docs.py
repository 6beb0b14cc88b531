"""/docs works offline: Swagger UI's files come from the app itself, not from a CDN."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from inference_api.app import DOCS_ASSETS_URL, create_app


def test_docs_reference_only_assets_the_app_serves() -> None:
    client = TestClient(create_app())
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert re.findall(r"https?://", page.text) == []  # no CDN host, no absolute URL at all
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js" in urls
    assert f"{DOCS_ASSETS_URL}/swagger-ui.css" in urls
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    for url in urls:
        assert client.get(url).status_code == 200, url

    script = client.get(f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text


def test_docs_routes_stay_out_of_the_schema_and_redoc_is_gone() -> None:
    client = TestClient(create_app())
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/docs")]
    assert client.get("/redoc").status_code == 404
    assert client.get(f"{DOCS_ASSETS_URL}/../app.py").status_code == 404


def test_docs_follow_the_root_path_behind_a_stage_prefix() -> None:
    client = TestClient(create_app(), root_path="/prod")
    page = client.get("/docs").text
    assert "/prod/docs/static/swagger-ui-bundle.js" in page
    assert "/prod/openapi.json" in page
