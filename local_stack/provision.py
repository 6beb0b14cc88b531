"""Creates the template's tables, buckets, queues, topics and subscriptions in moto (in-process or server).

Tests and the local stack both call this, so neither keeps a second list of resources that could drift
from template.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_stack.template import ACCOUNT_ID, Resolver, load_template, resources_of_type

ClientFactory = Callable[[str], Any]


@dataclass
class Stack:
    resolver: Resolver
    env: dict[str, str]

    def ref(self, logical_id: str) -> str:
        return self.resolver.physical[logical_id]["Ref"]

    def attr(self, logical_id: str, attribute: str) -> str:
        return self.resolver.physical[logical_id][attribute]

    def outputs(self) -> dict[str, str]:
        """The template's Outputs that resolve locally, as environment variables (`RequestQueueUrl` ->
        `REQUEST_QUEUE_URL`). Outputs of resources the local stack does not create (the HTTP API) are left out."""
        values: dict[str, str] = {}
        for name, output in self.resolver.template.get("Outputs", {}).items():
            try:
                values[re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()] = str(self.resolver.resolve(output["Value"]))
            except KeyError:
                continue
        return values

    def bucket_prefix(self, name: str) -> str:
        """A prefix of the data bucket, from the template's Layout mapping (e.g. "BatchOutputPrefix")."""
        prefix: str = self.resolver.template["Mappings"]["Layout"]["Bucket"][name]
        return prefix

    @property
    def table_name(self) -> str:
        return self.ref("PredictionsTable")

    @property
    def bucket_name(self) -> str:
        return self.ref("DataBucket")


def provision(
    client: ClientFactory,
    parameters: dict[str, str] | None = None,
    prefix: str = "inference-local",
    region: str = "us-east-1",
    visibility_timeout: int | None = None,
) -> Stack:
    """visibility_timeout overrides every queue's (local runs only: retries in seconds, not minutes)."""
    template = load_template()
    resolver = Resolver(template, dict(parameters or {}), region=region, stack_name=prefix)
    _tables(client("dynamodb"), resolver, prefix)
    _buckets(client("s3"), resolver, prefix)
    _queues(client("sqs"), resolver, prefix, region, visibility_timeout)
    _bucket_notifications(client("s3"), resolver)
    _topics(client("sns"), resolver, prefix)
    env = {
        name: str(resolver.resolve(value))
        for name, value in template["Globals"]["Function"]["Environment"]["Variables"].items()
    }
    env["AWS_REGION"] = region
    return Stack(resolver=resolver, env=env)


def _physical_name(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{logical_id}"


def _tables(ddb: Any, resolver: Resolver, prefix: str) -> None:
    for logical_id, resource in resources_of_type(resolver.template, "AWS::DynamoDB::Table").items():
        props = resolver.resolve(resource["Properties"])
        name = _physical_name(prefix, logical_id)
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        arn = f"arn:aws:dynamodb:{resolver.region}:{ACCOUNT_ID}:table/{name}"
        resolver.physical[logical_id] = {"Ref": name, "Arn": arn}


def _buckets(s3: Any, resolver: Resolver, prefix: str) -> None:
    for logical_id, resource in resources_of_type(resolver.template, "AWS::S3::Bucket").items():
        name = _physical_name(prefix, logical_id).lower()
        if resolver.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": resolver.region})
        resolver.physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        # Only the lifecycle here: notifications name queues, which are created after the buckets.
        lifecycle = resolver.resolve(resource["Properties"].get("LifecycleConfiguration", {}))
        rules = lifecycle.get("Rules", [])
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )


def _bucket_notifications(s3: Any, resolver: Resolver) -> None:
    """After the queues exist: each bucket's queue notifications (moto's S3 then sends events to its SQS)."""
    for logical_id, resource in resources_of_type(resolver.template, "AWS::S3::Bucket").items():
        props = resolver.resolve(resource["Properties"])
        queues = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        if not queues:
            continue
        configurations = [
            {
                "QueueArn": queue["Queue"],
                "Events": [queue["Event"]],
                "Filter": {"Key": {"FilterRules": queue.get("Filter", {}).get("S3Key", {}).get("Rules", [])}},
            }
            for queue in queues
        ]
        s3.put_bucket_notification_configuration(
            Bucket=resolver.physical[logical_id]["Ref"],
            NotificationConfiguration={"QueueConfigurations": configurations},
        )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    converted: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return converted


def _queues(sqs: Any, resolver: Resolver, prefix: str, region: str, visibility_timeout: int | None) -> None:
    queues = resources_of_type(resolver.template, "AWS::SQS::Queue")
    # Dead-letter queues first: the others' redrive policies name them.
    for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {})):
        props = resolver.resolve(queues[logical_id].get("Properties", {}))
        attributes = {
            key: str(props[key])
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        if visibility_timeout is not None:
            attributes["VisibilityTimeout"] = str(visibility_timeout)
        if "RedrivePolicy" in props:
            redrive = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        name = _physical_name(prefix, logical_id)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"
        resolver.physical[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _topics(sns: Any, resolver: Resolver, prefix: str) -> None:
    for logical_id in resources_of_type(resolver.template, "AWS::SNS::Topic"):
        name = _physical_name(prefix, logical_id)
        arn = sns.create_topic(Name=name)["TopicArn"]
        resolver.physical[logical_id] = {"Ref": arn, "TopicArn": arn, "TopicName": name}
    for logical_id, resource in resources_of_type(resolver.template, "AWS::SNS::Subscription").items():
        props = resolver.resolve(resource["Properties"])
        attributes = {"RawMessageDelivery": "true"} if props.get("RawMessageDelivery") else {}
        response = sns.subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], Attributes=attributes
        )
        resolver.physical[logical_id] = {"Ref": response["SubscriptionArn"]}
