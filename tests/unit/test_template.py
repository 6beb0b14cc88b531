"""Template rules the code relies on, checked on template.yaml itself."""

from __future__ import annotations

from pathlib import Path

from inference_core.domain.capacity import bulk_places
from local_stack.template import load_template, resources_of_type


def test_queues_outlast_their_consumers_six_times_over() -> None:
    template = load_template()
    resources = template["Resources"]
    for function, queue in [
        ("DispatcherFunction", "RequestQueue"),
        ("CompletionFunction", "CompletionQueue"),
        ("JobsFunction", "JobIntakeQueue"),
        ("WebhookFunction", "WebhookQueue"),
    ]:
        timeout = resources[function]["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"])
        assert resources[queue]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_every_consumed_queue_has_a_dead_letter_queue_with_an_alarm() -> None:
    template = load_template()
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["Properties"].get("Namespace") == "AWS/SQS"
    }
    for queue in ("RequestQueue", "CompletionQueue", "JobIntakeQueue", "WebhookQueue"):
        dlq = template["Resources"][queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert dlq in watched


def test_no_function_policy_grants_a_wildcard_action() -> None:
    for function in resources_of_type(load_template(), "AWS::Serverless::Function").values():
        for policy in function["Properties"].get("Policies", []):
            for statement in policy["Statement"]:
                assert all("*" not in action for action in statement["Action"])


def test_the_sweeper_runs_on_a_schedule_and_reads_only_the_open_index() -> None:
    template = load_template()
    sweeper = template["Resources"]["SweeperFunction"]["Properties"]
    statements = sweeper["Policies"][0]["Statement"]

    assert [e["Type"] for e in sweeper["Events"].values()] == ["Schedule"]
    query = next(s for s in statements if s["Action"] == ["dynamodb:Query"])
    assert query["Resource"]["Fn::Sub"][1]["Index"] == {"Fn::FindInMap": ["Layout", "Table", "OpenIndex"]}
    assert not any("dynamodb:Scan" in s["Action"] for s in statements)


def test_both_indexes_hold_keys_only_so_a_status_change_writes_neither() -> None:
    table = load_template()["Resources"]["PredictionsTable"]["Properties"]

    projections = {index["Projection"]["ProjectionType"] for index in table["GlobalSecondaryIndexes"]}

    assert projections == {"KEYS_ONLY"}


def test_the_failed_prediction_ratio_has_an_alarm() -> None:
    alarm = load_template()["Resources"]["FailedPredictionRatioAlarm"]["Properties"]

    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert names == {"PredictionsFailed", "PredictionsSucceeded"}
    assert alarm["Threshold"] == {"Ref": "FailedPredictionAlarmRatio"}


def test_the_dispatch_timeout_setting_is_the_dispatchers_timeout() -> None:
    template = load_template()
    timeout = template["Resources"]["DispatcherFunction"]["Properties"]["Timeout"]

    assert template["Globals"]["Function"]["Environment"]["Variables"]["DISPATCH_TIMEOUT_SECONDS"] == timeout


def test_bulk_chunks_leave_each_instance_a_slot_for_interactive_batches() -> None:
    parameters = load_template()["Parameters"]
    per_instance = parameters["MaxConcurrentInvocationsPerInstance"]["Default"]
    cap = parameters["JobMaxInFlightChunks"]["Default"]

    for instances in range(1, parameters["MaxInstanceCount"]["Default"] * 4 + 1):
        assert bulk_places(instances, per_instance, cap) < instances * per_instance
    assert cap >= parameters["MaxInstanceCount"]["Default"] * (per_instance - 1)  # the cap never binds at the default


def test_the_endpoint_scales_on_the_bulk_backlog_too() -> None:
    resources = load_template()["Resources"]
    policy = resources["BulkBacklogTargetTracking"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    queries = policy["CustomizedMetricSpecification"]["Metrics"]

    [metric] = [q["MetricStat"]["Metric"] for q in queries if "MetricStat" in q]
    assert metric["MetricName"] == "BulkBacklogSecondsPerInstance"
    assert metric["Namespace"] == "InferenceBackend"
    assert [q["Expression"] for q in queries if q.get("ReturnData")] == ["FILL(waiting, 0)"]
    assert policy["TargetValue"] == {"Ref": "BulkBacklogSecondsTarget"}
    for function in ("CompletionFunction", "JobsFunction", "SweeperFunction"):
        actions = [a for s in resources[function]["Properties"]["Policies"][0]["Statement"] for a in s["Action"]]
        assert "sagemaker:DescribeEndpoint" in actions, function


def test_uploads_and_inbox_files_reach_the_jobs_function_through_a_queue() -> None:
    template = load_template()
    bucket = template["Resources"]["DataBucket"]
    rules = [
        {r["Name"]: r["Value"] for r in c["Filter"]["S3Key"]["Rules"]}
        for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    ]
    prefixes = {rule["prefix"]["Fn::FindInMap"][2] for rule in rules}

    assert prefixes == {"JobUploadPrefix", "InboxPrefix"}
    assert all(rule["suffix"] == ".jsonl" for rule in rules)
    assert bucket["DependsOn"] == "JobIntakeQueuePolicy"
    events = template["Resources"]["JobsFunction"]["Properties"]["Events"]
    assert [e["Properties"]["Queue"]["Fn::GetAtt"][0] for e in events.values()] == ["JobIntakeQueue"]


def test_the_template_never_lets_webhooks_reach_loopback() -> None:
    # Only the local stack sets ALLOW_LOOPBACK_WEBHOOKS (for `make run`); no deployed function may.
    text = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    assert "ALLOW_LOOPBACK_WEBHOOKS" not in text
    assert "allow_loopback" not in text.lower()


def test_webhook_retries_end_in_the_dead_letter_queue_after_the_attempts_the_sender_counts() -> None:
    resources = load_template()["Resources"]
    redrive = resources["WebhookQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    sender = resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]["WEBHOOK_MAX_ATTEMPTS"]
    assert redrive == sender == {"Ref": "WebhookMaxAttempts"}


def test_the_result_cache_settings_match_what_the_code_accepts() -> None:
    from inference_core.domain.result_cache import CacheScope

    template = load_template()
    scope = template["Parameters"]["ResultCacheScope"]
    assert set(scope["AllowedValues"]) == {s.value for s in CacheScope}
    assert scope["Default"] == CacheScope.TENANT  # per tenant unless an operator decides otherwise
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["RESULT_CACHE_SCOPE"] == {"Ref": "ResultCacheScope"}
    assert variables["RESULT_CACHE_TTL_HOURS"] == {"Ref": "ResultCacheTtlHours"}
    # Every key names the model: a new image, archive or revision never serves an old vector.
    revision = variables["MODEL_REVISION"]["Fn::Sub"]
    assert all(f"${{{name}}}" in revision for name in ("ModelImageUri", "ModelDataUrl", "ModelRevision"))


def test_every_function_that_finishes_work_may_write_the_result_cache_back() -> None:
    resources = load_template()["Resources"]
    for name in ("CompletionFunction", "SweeperFunction", "JobsFunction"):
        statements = resources[name]["Properties"]["Policies"][0]["Statement"]
        actions = {action for statement in statements for action in statement["Action"]}
        assert "dynamodb:BatchWriteItem" in actions, name
        assert "s3:ListBucket" in actions, name  # a missing hits object must answer 404, not 403


def test_functions_move_to_a_new_model_only_after_the_endpoint_serves_it() -> None:
    # ENDPOINT_NAME through the endpoint resource makes CloudFormation update the functions (and MODEL_REVISION,
    # which keys the result cache) after the endpoint; an old model's vectors never get a new revision's keys.
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ENDPOINT_NAME"] == {
        "Fn::If": ["CreateEndpoint", {"Fn::GetAtt": ["Endpoint", "EndpointName"]}, {"Ref": "EndpointName"}]
    }


def test_the_result_cache_has_a_disposable_table_of_its_own() -> None:
    resources = load_template()["Resources"]
    table = resources["ResultCacheTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert "PointInTimeRecoverySpecification" not in table
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["RESULT_CACHE_TABLE_NAME"] == {"Ref": "ResultCacheTable"}


def test_every_checkov_skip_has_a_reason_and_is_listed_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    security = readme.split("## Security checks", 1)[1].split("\n## ", 1)[0]
    skipped: set[str] = set()
    for name, resource in load_template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip["comment"]) > 20, (name, skip)
            skipped.add(skip["id"])
    listed = {line.split("|")[1].split()[0] for line in security.splitlines() if line.startswith("| CKV_")}
    assert skipped == listed
