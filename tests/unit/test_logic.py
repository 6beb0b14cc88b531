"""Pure logic: the state machine, message parsing and template resolution (no AWS, no sockets)."""

from __future__ import annotations

import json

import pytest

from inference_core.dal.table import InvalidCursor, decode_cursor, encode_cursor
from inference_core.domain.batches import BatchLine, InvocationStatus
from inference_core.domain.predictions import (
    ALLOWED_SOURCES,
    TERMINAL_STATUSES,
    NewPrediction,
    PredictionStatus,
)
from inference_core.logic.completion import MalformedNotification, parse_notification, parse_results
from inference_core.logic.dispatch import encode_batch
from inference_core.logic.predictions import body_fingerprint
from local_stack.events import async_notification
from local_stack.template import Resolver, load_template, sqs_event_sources


def test_no_transition_leaves_a_terminal_status() -> None:
    for target, sources in ALLOWED_SOURCES.items():
        assert not sources & TERMINAL_STATUSES, target


def test_every_non_initial_status_is_reachable_and_queued_is_never_a_target() -> None:
    assert set(ALLOWED_SOURCES) == set(PredictionStatus) - {PredictionStatus.QUEUED}


def test_a_success_notification_parses() -> None:
    body = async_notification(
        inference_id="b1", endpoint_name="e", input_location="s3://b/in", output_location="s3://b/out"
    )

    note = parse_notification(body)

    assert note.invocation_status == InvocationStatus.COMPLETED
    assert note.inference_id == "b1"
    assert note.response_parameters.output_location == "s3://b/out"
    assert note.request_parameters.input_location == "s3://b/in"


def test_an_error_notification_parses_with_its_reason() -> None:
    body = async_notification(inference_id="b2", endpoint_name="e", input_location="s3://b/in", failure_reason="OOM")

    note = parse_notification(body)

    assert note.invocation_status == InvocationStatus.FAILED
    assert note.failure_reason == "OOM"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "null",
        "[]",
        "{}",
        '{"invocationStatus": "Completed"}',
        '{"invocationStatus": "Nope", "inferenceId": "x"}',
        '{"invocationStatus": "Completed", "inferenceId": ""}',
        '{"Type": "Notification", "Message": "not json"}',
    ],
)
def test_malformed_notifications_raise(body: str) -> None:
    with pytest.raises(MalformedNotification):
        parse_notification(body)


def test_result_lines_are_indexed_by_id_and_junk_lines_skipped() -> None:
    body = "\n".join(
        [
            json.dumps({"id": "a", "output": {"x": 1}}),
            "not json",
            json.dumps({"id": "b", "error": {"code": "bad", "message": "no"}}),
            json.dumps({"id": "c"}),
            "",
            json.dumps({"id": "a", "output": {"x": 2}}),
        ]
    ).encode()

    results = parse_results(body)

    assert set(results) == {"a", "b"}
    assert results["a"].output == {"x": 1}
    assert results["b"].error is not None
    assert results["b"].error.code == "bad"


def test_a_batch_encodes_one_json_line_per_prediction() -> None:
    lines = [BatchLine(id="a", inputs=["x", "y"]), BatchLine(id="b", inputs=["z\nw"], parameters={"k": 1})]

    decoded = [json.loads(line) for line in encode_batch(lines).decode().splitlines()]

    assert decoded == [
        {"id": "a", "inputs": ["x", "y"], "parameters": {}},
        {"id": "b", "inputs": ["z\nw"], "parameters": {"k": 1}},
    ]


def test_the_body_fingerprint_ignores_key_order_but_not_content() -> None:
    one = NewPrediction(inputs=["a"], metadata={"x": "1", "y": "2"})
    same = NewPrediction(inputs=["a"], metadata={"y": "2", "x": "1"})
    other = NewPrediction(inputs=["b"], metadata={"x": "1", "y": "2"})

    assert body_fingerprint(one) == body_fingerprint(same) != body_fingerprint(other)


def test_a_cursor_round_trips_only_for_its_own_tenant() -> None:
    key = {"pk": {"S": "PRED#1"}, "gsi1pk": {"S": "TENANT#acme"}, "gsi1sk": {"S": "2026#1"}}
    cursor = encode_cursor(key)

    assert decode_cursor(cursor, "TENANT#acme") == key
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "TENANT#globex")


def test_the_template_resolves_the_environment_the_functions_get() -> None:
    template = load_template()
    resolver = Resolver(template, {"MaxReceiveCount": "3"})
    resolver.physical["RequestQueue"] = {"Ref": "https://queue", "Arn": "arn:q"}

    assert resolver.resolve({"Ref": "MaxReceiveCount"}) == "3"
    assert resolver.resolve({"Ref": "RequestQueue"}) == "https://queue"
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}/${RequestQueue.Arn}"}) == "us-east-1/arn:q"
    assert resolver.resolve({"Fn::If": ["IsProd", "INFO", "DEBUG"]}) == "DEBUG"


def test_the_dispatcher_batches_as_the_template_configures() -> None:
    sources = {(s.function, s.event): s.properties for s in sqs_event_sources(load_template())}

    for lane in ("Requests", "Backlog"):
        assert sources["DispatcherFunction", lane]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert "MaximumBatchingWindowInSeconds" in sources["DispatcherFunction", lane]
    assert sources["DispatcherFunction", "Backlog"]["ScalingConfig"]["MaximumConcurrency"] == {
        "Ref": "BacklogLaneConcurrency"
    }
    assert any(f == "CompletionFunction" for f, _ in sources)
    assert all(
        p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        for (f, _), p in sources.items()
        if f == "CompletionFunction"
    )


def test_each_result_knows_its_byte_range_in_the_output() -> None:
    lines = [
        json.dumps({"id": "a", "output": {"text": "naïve \u2028 café"}}, ensure_ascii=False),
        "not json",
        json.dumps({"id": "b", "output": {"x": [1.5, 2.5]}}),
    ]
    body = ("\n".join(lines) + "\n").encode()

    results = parse_results(body)

    for located in results.values():
        assert json.loads(body[located.start : located.end + 1])["id"] == located.line.id
    assert results["a"].output == {"text": "naïve \u2028 café"}
