"""The one translation of AWS failures: condition failures (single writes and transactions) and what is retryable."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from inference_core.dal.aws_errors import AwsFailure, classify, condition_failed, translate
from inference_core.dal.table import TRANSACTION_ATTEMPTS, transact_write
from inference_core.errors import PermanentDependencyError, TransientError
from inference_core.sqs_batch import receive_count


def client_error(code: str, reasons: list[str] | None = None, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems" if reasons is not None else "UpdateItem")


def test_a_single_write_refused_by_its_condition() -> None:
    exc = client_error("ConditionalCheckFailedException")
    assert condition_failed(exc)
    assert condition_failed(exc, item=0)
    assert not condition_failed(exc, item=1)
    assert classify(exc) is AwsFailure.CONDITION_FAILED


def test_a_transaction_cancelled_by_conditions_says_which_item() -> None:
    exc = client_error("TransactionCanceledException", ["None", "ConditionalCheckFailed"])
    assert condition_failed(exc)
    assert condition_failed(exc, item=1)
    assert not condition_failed(exc, item=0)
    assert not condition_failed(exc, item=5)


def test_a_transaction_cancelled_by_a_conflict_is_no_condition_failure_and_is_retried() -> None:
    for reasons in (["TransactionConflict", "None"], ["ConditionalCheckFailed", "TransactionConflict"]):
        exc = client_error("TransactionCanceledException", reasons)
        assert not condition_failed(exc), reasons
        assert isinstance(translate(exc, "x"), TransientError), reasons
    throttled = client_error("TransactionCanceledException", ["ThrottlingError", "None"])
    assert isinstance(translate(throttled, "x"), TransientError)


def test_other_failures_are_no_condition_failures() -> None:
    assert not condition_failed(client_error("ValidationException"))
    assert not condition_failed(EndpointConnectionError(endpoint_url="http://x"))
    assert isinstance(translate(client_error("ValidationException"), "x"), PermanentDependencyError)
    assert isinstance(translate(client_error("InternalServerError", status=500), "x"), TransientError)


@pytest.mark.parametrize(
    ("attributes", "count"),
    [
        ({"ApproximateReceiveCount": "3"}, 3),
        ({}, 1),
        ({"ApproximateReceiveCount": "x"}, 1),
        ({"ApproximateReceiveCount": "0"}, 1),
        ({"ApproximateReceiveCount": "-2"}, 1),
        ({"ApproximateReceiveCount": None}, 1),
    ],
)
def test_a_receive_count_that_is_not_a_count_reads_as_the_first_delivery(
    attributes: dict[str, Any], count: int
) -> None:
    assert receive_count({"attributes": attributes}) == count


def _cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


class _FlakyClient:
    def __init__(self, errors: list[ClientError]) -> None:
        self.errors = errors
        self.calls = 0

    def transact_write_items(self, TransactItems: list[dict[str, object]]) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def test_a_transaction_cancelled_by_a_conflict_alone_is_sent_again() -> None:
    client = _FlakyClient([_cancelled("TransactionConflict", "None"), _cancelled("None", "TransactionConflict")])
    pauses: list[float] = []

    transact_write(client, [], sleep=pauses.append)

    assert client.calls == 3
    assert len(pauses) == 2
    assert pauses[1] > 0


def test_a_failed_condition_is_never_sent_again_and_conflicts_give_up_after_a_few_tries() -> None:
    condition = _FlakyClient([_cancelled("ConditionalCheckFailed", "TransactionConflict")])
    with pytest.raises(ClientError):
        transact_write(condition, [], sleep=lambda _: None)
    assert condition.calls == 1

    always = _FlakyClient([_cancelled("TransactionConflict")] * 10)
    with pytest.raises(ClientError):
        transact_write(always, [], sleep=lambda _: None)
    assert always.calls == TRANSACTION_ATTEMPTS
