"""Settings fail early with the variable's name; AWS failures map to one set of typed errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from inference_core.dal.aws_errors import AwsFailure, classify, translate
from inference_core.errors import ConfigurationError, NotFoundError, PermanentDependencyError, TransientError
from inference_core.settings import Settings
from local_stack.template import Resolver, load_template


def template_environment() -> dict[str, str]:
    """What template.yaml's Globals give every function (resources replaced by their logical ids)."""
    template = load_template()
    resolver = Resolver(template, {})
    for logical_id in template["Resources"]:
        resolver.physical[logical_id] = {"Ref": logical_id, "Arn": f"arn:{logical_id}"}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {name: str(resolver.resolve(value)) for name, value in variables.items()} | {"AWS_REGION": "us-east-1"}


def test_the_template_sets_every_required_setting() -> None:
    settings = Settings.from_environ(template_environment())

    assert settings.table_name == "PredictionsTable"
    assert settings.batch_input_prefix == "batches/input/"
    assert settings.tenant_index_name == load_template()["Mappings"]["Layout"]["Table"]["TenantIndex"]


def test_a_missing_variable_fails_with_its_name() -> None:
    environment = template_environment()
    del environment["REQUEST_QUEUE_URL"]

    with pytest.raises(ConfigurationError, match="REQUEST_QUEUE_URL"):
        Settings.from_environ(environment)


def test_an_invalid_variable_fails_with_its_name() -> None:
    with pytest.raises(ConfigurationError, match="MAX_RECEIVE_COUNT"):
        Settings.from_environ(template_environment() | {"MAX_RECEIVE_COUNT": "five"})


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("error", "failure", "domain_error"),
    [
        (client_error("ThrottlingException", 400), AwsFailure.TRANSIENT, TransientError),
        (client_error("ProvisionedThroughputExceededException", 400), AwsFailure.TRANSIENT, TransientError),
        (client_error("SlowDown", 503), AwsFailure.TRANSIENT, TransientError),
        (client_error("Anything", 500), AwsFailure.TRANSIENT, TransientError),
        (client_error("NoSuchKey", 404), AwsFailure.NOT_FOUND, NotFoundError),
        (client_error("ValidationError", 400), AwsFailure.REFUSED, PermanentDependencyError),
        (client_error("AccessDeniedException", 403), AwsFailure.REFUSED, PermanentDependencyError),
        (EndpointConnectionError(endpoint_url="https://x"), AwsFailure.TRANSIENT, TransientError),
    ],
)
def test_failures_translate_to_typed_errors(error: Exception, failure: AwsFailure, domain_error: type) -> None:
    assert isinstance(error, ClientError | EndpointConnectionError)

    assert classify(error) is failure
    assert isinstance(translate(error, "doing a thing"), domain_error)


def test_a_translated_error_carries_a_typed_reason_and_code() -> None:
    error = translate(client_error("ValidationError", 400), "the endpoint did not take the batch")

    assert isinstance(error, PermanentDependencyError)
    assert error.reason == "ValidationError happened"
    assert error.aws_error == "ValidationError"


def test_a_failed_condition_is_its_own_kind() -> None:
    assert classify(client_error("ConditionalCheckFailedException", 400)) is AwsFailure.CONDITION_FAILED
