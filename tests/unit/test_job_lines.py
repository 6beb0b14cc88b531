"""One line of a job file -> the line or why it cannot run; key layout of job files; chunk ids."""

from __future__ import annotations

import json

import pytest

from inference_core.dal import job_files
from inference_core.domain.inputs import estimated_tokens
from inference_core.domain.job_lines import parse_line
from inference_core.domain.jobs import (
    MAX_LINE_BYTES,
    chunk_line_id,
    split_chunk_line_id,
)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xed\xa0\x80", "invalid_utf8"),
        (b'"a string"', "not_an_object"),
        (b"[1]", "not_an_object"),
        (b'{"inputs": "x"}', "invalid_line"),
        (b'{"custom_id": "", "inputs": "x"}', "invalid_line"),
        (b'{"custom_id": 7, "inputs": "x"}', "invalid_line"),
        (json.dumps({"custom_id": "x" * 65, "inputs": "x"}).encode(), "invalid_line"),
        (b'{"custom_id": "a"}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": ""}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": []}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": [1]}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": "x", "parameters": {"normalize": "yes"}}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": "x", "parameters": {"temperature": 1}}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": "x", "extra": 1}', "invalid_line"),
        (b'{"custom_id": "a", "inputs": "\\ud800"}', "invalid_text"),
        (b'{"custom_id": "a", "inputs": "x", "parameters": {"\\udfff": 1}}', "invalid_text"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b"x" * (MAX_LINE_BYTES + 1), "line_too_long"),
    ],
)
def test_a_bad_line_says_why(raw: bytes, code: str) -> None:
    parsed = parse_line(raw, 7)
    assert parsed.line is None
    assert parsed.error is not None
    assert parsed.error.line == 7
    assert parsed.error.error.code == code, parsed.error


def test_a_bad_line_keeps_its_custom_id_when_it_has_one() -> None:
    parsed = parse_line(b'{"custom_id": "row-9", "inputs": ""}', 3)
    assert parsed.error is not None
    assert parsed.error.custom_id == "row-9"


def test_a_good_line_gives_texts_and_only_the_parameters_set() -> None:
    parsed = parse_line(b'{"custom_id": "a", "inputs": ["x", "y\\u2028z"], "parameters": {"normalize": false}}', 1)
    assert parsed.line is not None
    assert parsed.line.texts == ["x", "y\u2028z"]
    assert parsed.line.model_parameters() == {"normalize": False}


def test_chunk_line_ids_round_trip_any_custom_id() -> None:
    for custom_id in ["plain", "with:colons:inside", "ünïcode", "1:2"]:
        assert split_chunk_line_id(chunk_line_id(42, custom_id)) == (42, custom_id)


def test_token_estimate_grows_with_text() -> None:
    assert estimated_tokens("") == 2
    assert estimated_tokens("hello world") == 4
    assert estimated_tokens("hello, world!") == 6
    assert estimated_tokens("internationalization") > estimated_tokens("intern")


def test_inbox_keys_map_to_a_tenant_and_an_outbox_base(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = type("S", (), {"inbox_prefix": "inbox/", "outbox_prefix": "outbox/", "job_upload_prefix": "uploads/"})
    monkeypatch.setattr(job_files, "get_settings", lambda: settings)
    found = job_files.inbox_file("inbox/acme/daily/2026-11-23.jsonl")
    assert found is not None
    assert found.tenant_id == "acme"
    assert job_files.output_key(found.results_base) == "outbox/acme/daily/2026-11-23.output.jsonl"
    assert job_files.errors_key(found.results_base) == "outbox/acme/daily/2026-11-23.errors.jsonl"
    assert job_files.manifest_key(found.results_base) == "outbox/acme/daily/2026-11-23.manifest.json"
    for refused in [
        "inbox/acme.jsonl",
        "inbox//x.jsonl",
        "inbox/acme/.jsonl",
        "inbox/acme/x.txt",
        "other/acme/x.jsonl",
    ]:
        assert job_files.inbox_file(refused) is None, refused
    assert job_files.upload_job("uploads/acme/job_1.jsonl") == ("acme", "job_1")
    assert job_files.upload_job("uploads/acme/a/b.jsonl") is None


def test_an_unknown_name_is_echoed_at_most_64_characters_long() -> None:
    for line in (
        {"custom_id": "a", "inputs": "x", "parameters": {"p" * 5000: 1}},
        {"custom_id": "a", "inputs": "x", "q" * 5000: 1},
    ):
        parsed = parse_line(json.dumps(line).encode(), 1)
        assert parsed.error is not None
        assert parsed.error.error.code == "invalid_line"
        assert "p" * 65 not in parsed.error.error.message
        assert "q" * 65 not in parsed.error.error.message
        assert "p" * 64 in parsed.error.error.message or "q" * 64 in parsed.error.error.message
