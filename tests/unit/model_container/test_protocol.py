"""The JSON Lines framing and the per-line parameter contract, without the model."""

from __future__ import annotations

import json

import pytest

from model_server.protocol import LineError, LineRequest, dumps_line, parse_body, success_line

JSONL = "application/jsonlines"
# Characters str.splitlines() breaks on that are valid, unescaped, inside a JSON string.
UNICODE_BREAKS = ["\u2028", "\u2029", "\u0085"]
TRICKY_TEXT = "first\u2028second\u2029third\u0085fourth"


def parse(body: str, content_type: str = JSONL) -> list[LineRequest | LineError]:
    return parse_body(body.encode("utf-8"), content_type, max_inputs=8, max_chars=5_000)


def raw_line(document: object) -> str:
    """As pydantic and json.dumps(ensure_ascii=False) write it: U+2028 and friends stay raw."""
    line = json.dumps(document, ensure_ascii=False)
    assert "\n" not in line
    return line


@pytest.mark.parametrize("char", UNICODE_BREAKS)
def test_a_unicode_line_break_inside_a_string_does_not_split_the_line(char: str) -> None:
    text = f"before{char}after"
    body = raw_line({"id": "a", "inputs": [text, "plain"]}) + "\n" + raw_line({"id": "b", "inputs": text}) + "\n"
    assert char in body

    entries = parse(body)

    assert [type(e) for e in entries] == [LineRequest, LineRequest]
    assert entries[0].inputs == [text, "plain"]
    assert entries[1].inputs == [text]


def test_texts_holding_every_unicode_line_break_round_trip_exactly() -> None:
    texts = [TRICKY_TEXT, "\u2028end", "x\x1cy\x1dz\x1e", "tab\there", "\u0085leading"]

    (entry,) = parse(raw_line({"id": "id\u2028with\u2029breaks", "inputs": texts}) + "\n")

    assert isinstance(entry, LineRequest)
    assert entry.id == "id\u2028with\u2029breaks"
    assert entry.inputs == texts


def test_crlf_line_endings_are_accepted() -> None:
    body = raw_line({"id": "a", "inputs": "x"}) + "\r\n" + raw_line({"id": "b", "inputs": TRICKY_TEXT}) + "\r\n"

    entries = parse(body)

    assert [e.id for e in entries] == ["a", "b"]
    assert isinstance(entries[1], LineRequest)
    assert entries[1].inputs == [TRICKY_TEXT]


def test_only_newline_separates_lines() -> None:
    # A carriage return or a form feed inside a line does not start a new request: the line is simply malformed.
    entries = parse(raw_line({"id": "a", "inputs": "x"}) + "\r" + raw_line({"id": "b", "inputs": "y"}) + "\n")

    assert len(entries) == 1
    assert isinstance(entries[0], LineError)
    assert entries[0].code == "malformed_json"


def test_a_line_of_unicode_line_breaks_is_malformed_not_blank() -> None:
    entries = parse(raw_line({"id": "a", "inputs": "x"}) + "\n\u2028\n \t\r\n")

    assert [type(e) for e in entries] == [LineRequest, LineError]
    assert isinstance(entries[1], LineError)
    assert entries[1].code == "malformed_json"


def test_error_lines_stay_one_line_and_round_trip() -> None:
    line_id = "id" + "".join(UNICODE_BREAKS) + "\r\n\x1c\x1d\x1e\x0b\x0c" + "naïve 🚀"
    error = LineError(0, line_id, "invalid_parameters", f"unknown parameter '{TRICKY_TEXT}'")

    text = error.to_json()

    assert len(text.split("\n")) == 1
    assert text.splitlines() == [text]
    assert json.loads(text) == {
        "id": line_id,
        "error": {"code": "invalid_parameters", "message": f"unknown parameter '{TRICKY_TEXT}'"},
    }


def test_success_lines_stay_one_line_and_round_trip() -> None:
    line_id = "pred" + "".join(UNICODE_BREAKS) + "\r\n"

    text = success_line(line_id, "model\u2028name", [[0.5, -0.25]], [False])

    assert text.splitlines() == [text]
    document = json.loads(text)
    assert document["id"] == line_id
    assert document["output"]["model"] == "model\u2028name"
    assert document["output"]["embeddings"] == [[0.5, -0.25]]


def test_dumps_line_escapes_only_inside_strings_and_round_trips() -> None:
    document = {"k\u2028": ["\u0085", "\u2029", "plain", 1.5, None, True]}

    text = dumps_line(document)

    assert text.splitlines() == [text]
    assert not any(char in text for char in UNICODE_BREAKS)
    assert json.loads(text) == document


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (None, None),
        ({}, None),
        ({"normalize": True}, True),
        ({"normalize": False}, False),
        ({"normalize": None}, None),
        ({"encoding_format": "float"}, None),
        ({"encoding_format": "base64", "normalize": False}, False),
        ({"encoding_format": None}, None),
    ],
)
def test_valid_parameters(parameters: dict | None, expected: bool | None) -> None:
    document: dict = {"id": "a", "inputs": "x"}
    if parameters is not None:
        document["parameters"] = parameters

    (entry,) = parse(json.dumps(document) + "\n")

    assert isinstance(entry, LineRequest)
    assert entry.normalize is expected
    assert entry.parameters == (parameters or {})


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"truncate": True}, "'truncate'"),
        ({"normalize": True, "dimensions": 128, "Normalize": False}, "'Normalize', 'dimensions'"),
        ({"normalize": "true"}, "'normalize'"),
        ({"normalize": 1}, "'normalize'"),
        ({"normalize": 0}, "'normalize'"),
        ({"normalize": [True]}, "'normalize'"),
        ({"encoding_format": "int8"}, "'encoding_format'"),
        ({"encoding_format": "FLOAT"}, "'encoding_format'"),
        ({"encoding_format": True}, "'encoding_format'"),
        ({"encoding_format": ["float"]}, "'encoding_format'"),
        ([], "'parameters'"),
        ("normalize", "'parameters'"),
        (False, "'parameters'"),
    ],
)
def test_invalid_parameters_fail_their_line_alone_and_name_the_parameter(parameters: object, named: str) -> None:
    body = jsonl_lines(
        {"id": "before", "inputs": "x"},
        {"id": "bad", "inputs": "y", "parameters": parameters},
        {"id": "after", "inputs": "z", "parameters": {"normalize": False}},
    )

    before, bad, after = parse(body)

    assert isinstance(before, LineRequest)
    assert isinstance(after, LineRequest)
    assert after.normalize is False
    assert isinstance(bad, LineError)
    assert (bad.id, bad.code, bad.position) == ("bad", "invalid_parameters", 1)
    assert named in bad.message


def test_invalid_parameters_in_a_json_array_body_fail_alone() -> None:
    body = json.dumps([{"inputs": "x", "parameters": {"normalise": False}}, {"inputs": "y"}])

    bad, good = parse(body, "application/json")

    assert isinstance(bad, LineError)
    assert bad.code == "invalid_parameters"
    assert "'normalise'" in bad.message
    assert isinstance(good, LineRequest)


def jsonl_lines(*documents: object) -> str:
    return "".join(json.dumps(d) + "\n" for d in documents)
