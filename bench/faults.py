"""Fault run on the local stack: predictions under injected faults must all end terminal, each failure with a reason.

    python -m bench.faults [--output bench/results/faults.md] [--per-scenario 30] [--timeout 90]

One in-process local stack with short timings (MaxReceiveCount 3, InvocationTimeoutSeconds 20, SweepMarginSeconds 1,
visibility timeout 2 s, batching window 0.5 s, sweeper every second). Scenarios, in this order (the model server is
killed last, since nothing restarts it):

1. baseline: no faults;
2. failed invocations: the endpoint's next few invocations fail as a broken model would (-> `inference_failed`);
3. endpoint unavailable: InvokeEndpointAsync answers 503 until SQS's last delivery (-> `dispatch_failed`), then a
   second wave is submitted and the endpoint comes back while it is being retried (-> succeeded);
4. duplicate deliveries: copies of work items while in flight and after the end, duplicate success notifications
   and late failure notifications for finished batches: nothing may change once terminal;
5. lost notifications: the next few successes publish nothing; the sweeper must finish them from the batch output;
6. model server killed while work is in flight (not restarted): the rest must fail with a reason.

Predictions are submitted and read over HTTP; each is read until terminal, its first terminal view is kept, and
every prediction is read again at the end of its scenario to check that nothing changed after it was terminal.
Writes bench/results/faults.md and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import harness
from bench.harness import api_client, local_stack, publish
from local_stack.runner import LocalStack

PARAMETERS = {"MaxReceiveCount": "3", "InvocationTimeoutSeconds": "20", "SweepMarginSeconds": "1"}
VISIBILITY_TIMEOUT = 2
BATCHING_WINDOW = 0.5
SCHEDULE_INTERVAL = 1.0
INVOCATION_TIMEOUT = int(PARAMETERS["InvocationTimeoutSeconds"])
TERMINAL = ("succeeded", "failed", "cancelled", "expired")
NEEDS_REASON = {"failed", "expired"}
POLL_SECONDS = 0.25
_TEXT = (
    "the quick brown fox jumps over a lazy dog while river water runs past old mountain towns and bright city "
    "lights shine on coffee markets where prices of energy data and cloud music rise fast or slow at night"
)
WORDS = _TEXT.split()


def log(message: str) -> None:
    harness.log(message, "faults")


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Snapshot:
    """What a client sees of a finished prediction; any difference between two reads is a change."""

    status: str
    error_code: str | None
    error_message: str | None
    output: str | None  # digest of the inline output (or the presence of an output URL)
    completed_at: str | None
    embeddings: int | None
    inference_ms: int | None

    @classmethod
    def of(cls, prediction: dict[str, Any]) -> Snapshot:
        error = prediction.get("error") or {}
        output = prediction.get("output")
        embeddings = len(output["embeddings"]) if isinstance(output, dict) and "embeddings" in output else None
        if output is not None:
            shown = digest(output)
        elif prediction.get("output_url"):
            shown = "output_url"
        else:
            shown = None
        return cls(
            status=prediction["status"],
            error_code=error.get("code"),
            error_message=error.get("message"),
            output=shown,
            completed_at=prediction.get("completed_at"),
            embeddings=embeddings,
            inference_ms=(prediction.get("metrics") or {}).get("inference_ms"),
        )

    def key(self) -> tuple[Any, ...]:
        """Everything but the derived metrics."""
        return (self.status, self.error_code, self.error_message, self.output, self.completed_at)


@dataclass
class Submitted:
    id: str
    inputs: list[str]
    created_at: str


@dataclass
class Outcome:
    name: str
    title: str
    faults: str
    expected: str
    submitted: list[Submitted] = field(default_factory=list)
    first: dict[str, Snapshot] = field(default_factory=dict)  # first terminal view of each prediction
    final: dict[str, Snapshot] = field(default_factory=dict)  # the view at the end of the scenario
    last_status: dict[str, str] = field(default_factory=dict)
    last_submit: float = 0.0  # monotonic time of the last submission
    seconds_to_terminal: float | None = None
    endpoint: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # product bugs: non-terminal, no reason, changed, bad output
    stuck: list[tuple[str, bool]] = field(default_factory=list)  # (stored status, work item in the request DLQ)
    design: str = ""  # what the scenario shows when it goes as designed

    def statuses(self) -> Counter[str]:
        return Counter(s.status for s in self.final.values())

    def error_codes(self) -> Counter[str]:
        return Counter(s.error_code or "(none)" for s in self.final.values() if s.status != "succeeded")

    def non_terminal(self) -> list[str]:
        return [p.id for p in self.submitted if p.id not in self.first]

    def without_reason(self) -> list[str]:
        return [i for i, s in self.final.items() if s.status in NEEDS_REASON and not (s.error_code and s.error_message)]

    def changed(self) -> list[str]:
        return [i for i, s in self.first.items() if i in self.final and self.final[i].key() != s.key()]


class FaultRun:
    def __init__(self, stack: LocalStack, api: httpx.Client, per_scenario: int, timeout: float) -> None:
        self.stack = stack
        self.api = api
        self.per_scenario = per_scenario
        self.timeout = timeout
        self.rng = random.Random(20261123)
        self.sequence = 0
        self.sqs = stack.client("sqs")
        self.sns = stack.client("sns")
        assert stack.stack is not None
        self.outputs = stack.stack.outputs()
        self.env = stack.stack.env

    # ------------------------------------------------------------------ the local endpoint
    def faults(self, **values: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.stack.urls['sagemaker']}/_local/faults", json=values, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def endpoint_stats(self) -> dict[str, int]:
        response = httpx.get(f"{self.stack.urls['sagemaker']}/_local/stats", timeout=10)
        response.raise_for_status()
        result: dict[str, int] = response.json()
        return result

    def queue_depth(self, url_name: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.outputs[url_name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_letter_depths(self) -> dict[str, int]:
        return {
            "request DLQ": self.queue_depth("REQUEST_DEAD_LETTER_QUEUE_URL"),
            "completion DLQ": self.queue_depth("COMPLETION_DEAD_LETTER_QUEUE_URL"),
        }

    # ------------------------------------------------------------------ submitting and watching
    def inputs(self, scenario: str) -> list[str]:
        texts = []
        for _ in range(self.rng.randint(1, 8)):
            self.sequence += 1
            words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(4, 24)))
            texts.append(f"{scenario} text {self.sequence}: {words}.")
        return texts

    def submit(
        self,
        outcome: Outcome,
        count: int,
        spread: float,
        after_each: Callable[[Submitted], None] | None = None,
    ) -> None:
        """Submits `count` predictions evenly over `spread` seconds (so they form several batches)."""
        start = time.monotonic()
        for n in range(count):
            delay = start + n * spread / max(count, 1) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            inputs = self.inputs(outcome.name)
            response = self.api.post(
                "/v1/predictions", json={"inputs": inputs, "metadata": {"scenario": outcome.name, "n": str(n)}}
            )
            if response.status_code != 202:
                outcome.problems.append(f"submit answered {response.status_code}: {response.text[:200]}")
                continue
            body = response.json()
            submitted = Submitted(body["id"], inputs, body["created_at"])
            outcome.submitted.append(submitted)
            outcome.last_status[submitted.id] = body["status"]
            outcome.last_submit = time.monotonic()
            if after_each is not None:
                after_each(submitted)

    def read(self, prediction_id: str) -> dict[str, Any] | None:
        for _ in range(3):
            try:
                response = self.api.get(f"/v1/predictions/{prediction_id}")
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                result: dict[str, Any] = response.json()
                return result
            time.sleep(0.2)
        return None

    def poll(self, outcome: Outcome, started: float) -> None:
        """One pass over every prediction not yet seen terminal."""
        for submitted in list(outcome.submitted):
            if submitted.id in outcome.first:
                continue
            prediction = self.read(submitted.id)
            if prediction is None:
                continue
            outcome.last_status[submitted.id] = prediction["status"]
            if prediction["status"] in TERMINAL:
                outcome.first[submitted.id] = Snapshot.of(prediction)
                outcome.seconds_to_terminal = time.monotonic() - started

    def wait_terminal(self, outcome: Outcome, started: float, limit: float | None = None) -> bool:
        """Polls until every prediction was seen terminal, or until `limit` seconds after `started` (the scenario's
        time, and never less than half of it after the last submission)."""
        deadline = max(started + (limit or self.timeout), outcome.last_submit + self.timeout / 2)
        while True:
            self.poll(outcome, started)
            if all(p.id in outcome.first for p in outcome.submitted):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)

    def finish(self, outcome: Outcome, started: float, before: dict[str, int], dead_before: dict[str, int]) -> None:
        """Waits for the rest, then reads every prediction once more and checks what a client would see."""
        if not self.wait_terminal(outcome, started):
            outcome.seconds_to_terminal = None
        for submitted in outcome.submitted:
            prediction = self.read(submitted.id)
            if prediction is None:
                outcome.problems.append(f"`{submitted.id}`: could not be read at the end of the scenario")
                continue
            outcome.last_status[submitted.id] = prediction["status"]
            snapshot = Snapshot.of(prediction)
            if submitted.id in outcome.first or snapshot.status in TERMINAL:
                outcome.final[submitted.id] = snapshot
                outcome.first.setdefault(submitted.id, snapshot)
        after = self.endpoint_stats()
        outcome.endpoint = {k: after[k] - before[k] for k in ("invocations", "succeeded", "failed", "rejected")}
        dead_after = self.dead_letter_depths()
        outcome.dead_letters = {k: dead_after[k] - dead_before[k] for k in dead_after}
        self.check(outcome)

    def check(self, outcome: Outcome) -> None:
        inputs = {p.id: len(p.inputs) for p in outcome.submitted}
        stuck = outcome.non_terminal()
        dead_lettered = self.dead_lettered_work() if stuck else set()
        for prediction_id in stuck:
            record = self.record(prediction_id)
            outcome.stuck.append((record.status if record else "missing", prediction_id in dead_lettered))
            outcome.problems.append(
                f"`{prediction_id}` did not reach a terminal state within {self.timeout:.0f} s "
                f"(last status `{outcome.last_status.get(prediction_id)}`; {self.whereabouts(prediction_id)}; its work "
                f"item {'IS' if prediction_id in dead_lettered else 'is not'} in the request DLQ)"
            )
        for prediction_id in outcome.without_reason():
            s = outcome.final[prediction_id]
            outcome.problems.append(
                f"`{prediction_id}` ended `{s.status}` without an error code and message "
                f"(code {s.error_code!r}, message {s.error_message!r})"
            )
        for prediction_id in outcome.changed():
            first, final = outcome.first[prediction_id], outcome.final[prediction_id]
            outcome.problems.append(f"`{prediction_id}` changed after it was terminal: {first.key()} -> {final.key()}")
        for prediction_id, s in outcome.final.items():
            if s.status == "succeeded" and s.embeddings != inputs[prediction_id] and s.output != "output_url":
                outcome.problems.append(
                    f"`{prediction_id}` succeeded with {s.embeddings} embeddings for {inputs[prediction_id]} inputs"
                )

    def dead_lettered_work(self) -> set[str]:
        """Prediction ids of the work items in the request DLQ (read, then hidden for the rest of the run)."""
        found: set[str] = set()
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.outputs["REQUEST_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10, VisibilityTimeout=900
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                try:
                    found.add(str(json.loads(message["Body"]).get("prediction_id")))
                except (ValueError, AttributeError):
                    continue

    @staticmethod
    def record(prediction_id: str) -> Any:
        from inference_core.dal.predictions import prediction_store

        return prediction_store().get(prediction_id, consistent=True)

    def whereabouts(self, prediction_id: str) -> str:
        """The status record as stored (consistent read), for a prediction that did not finish."""
        record = self.record(prediction_id)
        if record is None:
            return "no status record"
        started = record.started_at.isoformat() if record.started_at else None
        return f"stored status `{record.status}`, batch `{record.batch_id}`, started_at {started}"

    def scenario(self, outcome: Outcome, body: Callable[[Outcome, float], None]) -> Outcome:
        log(f"scenario {outcome.name}: {outcome.title}")
        before, dead_before = self.endpoint_stats(), self.dead_letter_depths()
        started = time.monotonic()
        try:
            body(outcome, started)
        finally:
            leftover = self.faults(model_failures=0, unavailable=False, lost_notifications=0)
        self.finish(outcome, started, before, dead_before)
        outcome.notes.append(
            f"faults left unused at the end: model_failures {leftover['model_failures']}, "
            f"lost_notifications {leftover['lost_notifications']}"
        )
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(outcome.statuses().items()))
        log(
            f"  {len(outcome.submitted)} submitted: {statuses}; non-terminal {len(outcome.non_terminal())}; "
            f"{_seconds(outcome.seconds_to_terminal)} s; problems {len(outcome.problems)}"
        )
        return outcome

    # ------------------------------------------------------------------ scenarios
    def baseline(self) -> Outcome:
        outcome = Outcome("baseline", "Baseline", "none", "all succeeded")
        outcome.design = "without faults every prediction succeeds with one embedding per input"

        def body(o: Outcome, started: float) -> None:
            self.submit(o, self.per_scenario, spread=3)

        outcome = self.scenario(outcome, body)
        statuses = outcome.statuses()
        if statuses["succeeded"] != len(outcome.submitted):
            outcome.deviations.append("not every prediction succeeded")
        return outcome

    def model_failures(self, failures: int = 3) -> Outcome:
        outcome = Outcome(
            "model-failures",
            "Failed invocations",
            f"`model_failures: {failures}` (the next {failures} invocations answer 500 as a broken model)",
            f"the predictions of {failures} batches failed `inference_failed`, the rest succeeded",
        )
        outcome.design = "a broken model fails exactly its batches `inference_failed` with the endpoint's message"

        def body(o: Outcome, started: float) -> None:
            self.faults(model_failures=failures)
            self.submit(o, self.per_scenario, spread=6)

        outcome = self.scenario(outcome, body)
        codes = outcome.error_codes()
        if set(codes) != {"inference_failed"} or outcome.endpoint["failed"] != failures:
            outcome.deviations.append(f"expected {failures} failed batches, all `inference_failed`")
        if not outcome.statuses()["succeeded"]:
            outcome.deviations.append("nothing succeeded after the failures were used up")
        return outcome

    def unavailable(self) -> Outcome:
        receives = PARAMETERS["MaxReceiveCount"]
        outcome = Outcome(
            "unavailable",
            "Endpoint unavailable past the retries",
            "`unavailable: true` (InvokeEndpointAsync answers 503) until the first wave is terminal; a second wave is "
            "submitted, refused once, then `unavailable: false`",
            f"first wave failed `dispatch_failed` after {receives} receives (messages in the request DLQ); "
            "second wave succeeded on a retry",
        )
        outcome.design = (
            "a refused invocation fails `dispatch_failed` once SQS's last delivery is spent (work item in the request "
            "DLQ), and work being retried when the endpoint comes back succeeds"
        )
        first_wave = max(1, self.per_scenario * 3 // 4)
        second: set[str] = set()

        def body(o: Outcome, started: float) -> None:
            self.faults(unavailable=True)
            self.submit(o, first_wave, spread=2)
            if not self.wait_terminal(o, started, limit=self.timeout / 2):
                o.notes.append("the first wave was not all terminal in time; the endpoint came back anyway")
            seen = len(o.submitted)
            rejected_before = self.endpoint_stats()["rejected"]
            self.submit(o, self.per_scenario - first_wave, spread=0.5)
            second.update(p.id for p in o.submitted[seen:])
            deadline = time.monotonic() + 10
            while self.endpoint_stats()["rejected"] == rejected_before and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            o.notes.append(f"endpoint back after {time.monotonic() - started:.1f} s")
            self.faults(unavailable=False)

        outcome = self.scenario(outcome, body)
        first_ids = [p.id for p in outcome.submitted if p.id not in second]
        first_codes = Counter(outcome.final[i].error_code for i in first_ids if i in outcome.final)
        second_statuses = Counter(outcome.final[i].status for i in second if i in outcome.final)
        outcome.notes.append(
            f"first wave ({len(first_ids)}): {dict(first_codes)}; second wave ({len(second)}): {dict(second_statuses)}"
        )
        if first_codes != Counter({"dispatch_failed": len(first_ids)}):
            outcome.deviations.append("the first wave did not all fail `dispatch_failed`")
        if second_statuses != Counter({"succeeded": len(second)}):
            outcome.deviations.append("the second wave did not all succeed once the endpoint came back")
        # The dispatcher fails a prediction on the last delivery SQS makes; when a concurrent duplicate used that
        # delivery up (visibility timeouts shorter than a refused dispatch), the sweeper finds the work item in the
        # request DLQ and fails it with that reason instead.
        messages = [outcome.final[i].error_message or "" for i in first_ids if i in outcome.final]
        by_dispatcher = sum(f"after {receives} attempts" in m for m in messages)
        by_sweeper = sum("dead-letter queue" in m for m in messages)
        outcome.notes.append(f"`dispatch_failed` set by the dispatcher {by_dispatcher}, by the sweeper {by_sweeper}")
        if by_dispatcher + by_sweeper != len(messages):
            outcome.deviations.append("a `dispatch_failed` message names neither the attempts nor the DLQ")
        if outcome.dead_letters.get("request DLQ", 0) < len(first_ids):
            outcome.notes.append(
                f"request DLQ grew by {outcome.dead_letters.get('request DLQ', 0)} for {len(first_ids)} "
                "dead-lettered work items (SQS moves a message on the receive after the last; it may still be "
                "pending)"
            )
        return outcome

    def duplicates(self) -> Outcome:
        outcome = Outcome(
            "duplicates",
            "Duplicate deliveries",
            "every other work item sent again at once (in flight); after all are terminal, 2 more copies of every "
            "work item, a copy of every batch's success notification (success topic) and a late failure "
            "notification for every batch (error topic)",
            "all succeeded, each exactly once: no status or output changes after the first terminal view, no extra "
            "invocations after the end",
        )
        outcome.design = (
            "duplicate work items and success or late failure notifications change nothing and cause no invocation"
        )
        from inference_core.dal.batches import batch_store
        from inference_core.dal.predictions import prediction_store
        from inference_core.domain.batches import WorkItem
        from local_stack.events import async_notification

        bodies: dict[str, str] = {}
        batch_ids: set[str] = set()
        sent = Counter[str]()

        def work_item(submitted: Submitted) -> str:
            record = prediction_store().get(submitted.id, consistent=True)
            assert record is not None
            item = WorkItem(
                prediction_id=submitted.id,
                tenant_id=record.tenant_id,
                created_at=datetime.fromisoformat(submitted.created_at),
                inputs=submitted.inputs,
            )
            return item.model_dump_json()

        def duplicate_now(submitted: Submitted) -> None:
            bodies[submitted.id] = work_item(submitted)
            if len(bodies) % 2:
                self.sqs.send_message(QueueUrl=self.env["REQUEST_QUEUE_URL"], MessageBody=bodies[submitted.id])
                sent["work items in flight"] += 1

        def body(o: Outcome, started: float) -> None:
            self.submit(o, self.per_scenario, spread=3, after_each=duplicate_now)
            if not self.wait_terminal(o, started):
                o.notes.append("not all terminal before the late duplicates")
            invocations = self.endpoint_stats()["invocations"]
            for body_text in bodies.values():
                for _ in range(2):
                    self.sqs.send_message(QueueUrl=self.env["REQUEST_QUEUE_URL"], MessageBody=body_text)
                    sent["work items after the end"] += 1
            batches = {r.batch_id for i in bodies if (r := prediction_store().get(i)) is not None and r.batch_id}
            bucket, output_prefix = self.env["BUCKET_NAME"], self.env["BATCH_OUTPUT_PREFIX"]
            failure_prefix = self.env["BATCH_FAILURE_PREFIX"]
            for batch_id in sorted(batches):
                batch = batch_store().get(batch_id)
                if batch is None:
                    o.notes.append(f"batch `{batch_id}` has no batch record")
                    continue
                common = {
                    "inference_id": batch_id,
                    "endpoint_name": self.env["ENDPOINT_NAME"],
                    "input_location": batch.input_location,
                }
                success = async_notification(**common, output_location=f"s3://{bucket}/{output_prefix}{batch_id}.out")
                self.sns.publish(TopicArn=self.outputs["SUCCESS_TOPIC_ARN"], Message=success)
                sent["success notifications"] += 1
                failure = async_notification(
                    **common,
                    failure_location=f"s3://{bucket}/{failure_prefix}{batch_id}-error.out",
                    failure_reason="ModelError: injected late failure notification",
                )
                self.sns.publish(TopicArn=self.outputs["ERROR_TOPIC_ARN"], Message=failure)
                sent["late failure notifications"] += 1
            # Let every copy be received and dropped: both queues empty, then a little longer.
            deadline = time.monotonic() + 30
            quiet_since: float | None = None
            while time.monotonic() < deadline:
                busy = self.queue_depth("REQUEST_QUEUE_URL") + self.queue_depth("COMPLETION_QUEUE_URL")
                if busy:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 2 * VISIBILITY_TIMEOUT:
                    break
                time.sleep(0.25)
            else:
                o.notes.append("the queues were not empty 30 s after the late duplicates")
            extra = self.endpoint_stats()["invocations"] - invocations
            o.notes.append(f"endpoint invocations caused by the late duplicates: {extra}")
            if extra:
                o.deviations.append(f"{extra} extra invocations after every prediction was terminal")
            o.notes.append(f"{len(batches)} batches carried the {len(o.submitted)} predictions")
            batch_ids.update(batches)

        outcome = self.scenario(outcome, body)
        outcome.notes.insert(0, "sent: " + ", ".join(f"{v} {k}" for k, v in sent.items()))
        if outcome.endpoint["invocations"] != len(batch_ids):
            outcome.deviations.append("endpoint invocations differ from the number of batches: a duplicate was invoked")
        if outcome.statuses()["succeeded"] != len(outcome.submitted):
            outcome.deviations.append("not every prediction succeeded")
        return outcome

    def lost_notifications(self, lost: int = 3) -> Outcome:
        outcome = Outcome(
            "lost-notifications",
            "Dead-lettered notifications",
            f"`lost_notifications: {lost}` (the next {lost} successful batches write their output, publish nothing)",
            f"all succeeded; the predictions of {lost} batches finished by the sweeper from the batch output after "
            f"InvocationTimeoutSeconds + SweepMarginSeconds ({INVOCATION_TIMEOUT + 1} s)",
        )
        outcome.design = "the sweeper completes batches whose notification was lost from their output objects"

        def body(o: Outcome, started: float) -> None:
            self.faults(lost_notifications=lost)
            self.submit(o, self.per_scenario, spread=6)

        outcome = self.scenario(outcome, body)
        swept = [i for i, s in outcome.final.items() if (s.inference_ms or 0) >= INVOCATION_TIMEOUT * 1000]
        outcome.notes.append(
            f"{len(swept)} predictions finished {INVOCATION_TIMEOUT} s or more after they started (by the sweeper)"
        )
        if outcome.statuses()["succeeded"] != len(outcome.submitted):
            outcome.deviations.append("not every prediction succeeded")
        if not swept:
            outcome.deviations.append("no prediction was finished by the sweeper")
        return outcome

    def model_killed(self) -> Outcome:
        outcome = Outcome(
            "model-killed",
            "Model server killed",
            "a burst of a third of the predictions, SIGKILL to the model server as soon as the endpoint has taken an "
            "invocation, then the rest over 3 s; the server is not restarted",
            "whatever finished before the kill succeeded; the rest failed `inference_failed` (the model container "
            "is unreachable)",
        )
        outcome.design = "a killed model container fails every batch it could not serve `inference_failed`"

        def body(o: Outcome, started: float) -> None:
            before = self.endpoint_stats()["invocations"]
            burst = max(1, self.per_scenario // 3)
            self.submit(o, burst, spread=0)
            deadline = time.monotonic() + 15
            while self.endpoint_stats()["invocations"] == before and time.monotonic() < deadline:
                time.sleep(0.02)
            stats = self.endpoint_stats()
            in_flight = stats["invocations"] - before
            model = self.stack._model
            assert model is not None
            model.kill()
            model.wait(timeout=10)
            terminal = sum(1 for p in o.submitted if (s := self.read(p.id)) and s["status"] in TERMINAL)
            o.notes.append(
                f"killed at {time.monotonic() - started:.1f} s: {in_flight} invocation(s) taken by the endpoint, "
                f"{stats['succeeded'] + stats['failed'] - before} finished before, {terminal} of {burst} predictions "
                "terminal just after the kill"
            )
            self.submit(o, self.per_scenario - burst, spread=3)

        outcome = self.scenario(outcome, body)
        codes = outcome.error_codes()
        if set(codes) - {"inference_failed"}:
            outcome.deviations.append(f"failures other than `inference_failed`: {dict(codes)}")
        if not codes:
            outcome.deviations.append("nothing failed after the kill")
        return outcome


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _codes(codes: Counter[str]) -> str:
    return ", ".join(f"`{k}` {v}" for k, v in sorted(codes.items())) or "-"


def render(outcomes: list[Outcome], startup: float, total: float, args: argparse.Namespace) -> str:
    lines = [
        "# Fault run (local stack, CPU model server)",
        "",
        "`python -m bench.faults` (`make fault-run`): one in-process local stack with "
        + ", ".join(f"{k} {v}" for k, v in PARAMETERS.items())
        + f", visibility timeout {VISIBILITY_TIMEOUT} s, batching window {BATCHING_WINDOW} s, sweeper every "
        f"{SCHEDULE_INTERVAL:g} s. Each scenario submits {args.per_scenario} predictions of 1-8 short English texts "
        f"over HTTP and reads each until it is terminal (at most {args.timeout:.0f} s per scenario); every "
        "prediction is read once more at the end of its scenario to check that nothing changed after it was "
        "terminal. *Without reason* counts failed or expired predictions with no error code or message. Time to "
        f"terminal is from the scenario's first submission to the last prediction seen terminal (read every "
        f"{POLL_SECONDS} s, plus the reading time).",
        "",
        "## Summary",
        "",
        "| scenario | submitted | succeeded | failed | cancelled | expired | non-terminal | without reason | "
        "changed after terminal | time to all terminal (s) | error codes | as expected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    totals: Counter[str] = Counter()
    all_codes: Counter[str] = Counter()
    for o in outcomes:
        statuses = o.statuses()
        row = {
            "submitted": len(o.submitted),
            **{s: statuses[s] for s in TERMINAL},
            "non-terminal": len(o.non_terminal()),
            "without reason": len(o.without_reason()),
            "changed": len(o.changed()),
        }
        totals.update(row)
        all_codes.update(o.error_codes())
        lines.append(
            f"| {o.title} | {row['submitted']} | {row['succeeded']} | {row['failed']} | {row['cancelled']} | "
            f"{row['expired']} | {row['non-terminal']} | {row['without reason']} | {row['changed']} | "
            f"{_seconds(o.seconds_to_terminal)} | {_codes(o.error_codes())} | "
            f"{'yes' if not o.deviations and not o.problems else 'NO'} |"
        )
    everything_fine = all(not o.deviations and not o.problems for o in outcomes)
    lines.append(
        f"| **total** | **{totals['submitted']}** | **{totals['succeeded']}** | **{totals['failed']}** | "
        f"**{totals['cancelled']}** | **{totals['expired']}** | **{totals['non-terminal']}** | "
        f"**{totals['without reason']}** | **{totals['changed']}** | | {_codes(all_codes)} | "
        f"**{'yes' if everything_fine else 'NO'}** |"
    )
    problems = [(o, p) for o in outcomes for p in o.problems]
    if not problems:
        verdict = (
            f"All {totals['submitted']} predictions reached a terminal state, every failure carries an error code "
            "and message, and no prediction changed after it was first seen terminal"
        )
    else:
        verdict = (
            f"{len(problems)} product problem(s) were found (listed below): {totals['non-terminal']} prediction(s) "
            f"did not reach a terminal state, {totals['without reason']} ended without a reason and "
            f"{totals['changed']} changed after they were terminal"
        )
    sentences = [verdict + "."]
    stuck = Counter((o.title, status, in_dlq) for o in outcomes for status, in_dlq in o.stuck)
    if stuck:
        parts = []
        for (title, status, in_dlq), count in sorted(stuck.items()):
            where = "with its work item in the request DLQ" if in_dlq else "with its work item not in the request DLQ"
            parts.append(f"{count} in *{title}* stored `{status}` {where}")
        sentences.append(
            "Left non-terminal: "
            + "; ".join(parts)
            + " (a `queued` record whose work item is dead-lettered is dispatched by nothing: the sweeper only "
            "expires it after PredictionTtlSeconds, and then as `expired`, not as the failure it was)."
        )
    good = [o for o in outcomes if not o.deviations and not o.problems]
    bad = [o for o in outcomes if o.deviations or o.problems]
    if good:
        sentences.append("As designed: " + "; ".join(o.design for o in good) + ".")
    if bad:
        sentences.append(
            "Not as designed: " + ", ".join(f"*{o.title}*" for o in bad) + " (see its table and the problems list)."
        )
    sentences.append(
        f"Stack start-up took {startup:.1f} s and the whole run {total:.0f} s; times depend on this machine (2 cores, "
        "the model on CPU, whatever else runs on it)."
    )
    lines += ["", " ".join(sentences), ""]
    for n, o in enumerate(outcomes, 1):
        statuses = o.statuses()
        lines += [
            f"## {n}. {o.title} (`{o.name}`)",
            "",
            "| measure | value |",
            "|---|---|",
            f"| faults | {o.faults} |",
            f"| expected | {o.expected} |",
            f"| submitted | {len(o.submitted)} ({sum(len(p.inputs) for p in o.submitted)} inputs) |",
            "| terminal by status | " + (", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) or "-") + " |",
            f"| error codes | {_codes(o.error_codes())} |",
        ]
        messages = Counter((s.error_code, s.error_message) for s in o.final.values() if s.error_code)
        for (code, message), count in sorted(messages.items(), key=lambda m: (str(m[0][0]), -m[1]))[:6]:
            shown = (message or "").replace("|", "\\|")
            lines.append(f"| message of `{code}` ({count}) | {shown} |")
        lines += [
            f"| non-terminal at the end | {len(o.non_terminal())} |",
            f"| failed/expired without reason | {len(o.without_reason())} |",
            f"| changed after first terminal | {len(o.changed())} |",
            f"| time to all terminal | {_seconds(o.seconds_to_terminal)} s |",
            "| endpoint | " + ", ".join(f"{k} {v}" for k, v in o.endpoint.items()) + " |",
            "| dead-letter queues (growth) | " + ", ".join(f"{k} +{v}" for k, v in o.dead_letters.items()) + " |",
        ]
        for note in o.notes:
            lines.append(f"| note | {note} |")
        lines.append(f"| as expected | {'yes' if not o.deviations and not o.problems else 'NO'} |")
        for deviation in o.deviations:
            lines.append(f"| deviation | {deviation} |")
        lines.append("")
    lines += ["## Problems found (product bugs)", ""]
    if problems:
        lines += [f"- {o.title} (`{o.name}`): {p}" for o, p in problems]
    else:
        lines.append("None: no prediction was left non-terminal, ended without a reason, or changed once terminal.")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-scenario", type=int, default=30, help="predictions per scenario")
    parser.add_argument("--timeout", type=float, default=90, help="seconds each scenario may take to finish")
    parser.add_argument("--output", type=Path, default=Path("bench/results/faults.md"))
    parser.add_argument("--verbose", action="store_true", help="show moto's request log and the endpoint's warnings")
    parser.add_argument("--log", type=Path, help="keep the functions' logs (JSON lines) in this file")
    args = parser.parse_args(argv)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
        logging.getLogger("local_stack.sagemaker").setLevel(logging.ERROR)  # the injected failures, one per batch
    began = time.monotonic()
    outcomes: list[Outcome] = []
    # The functions log to stdout (as in Lambda): keep that out of the report.
    with (
        tempfile.TemporaryDirectory() as scratch,
        (args.log or Path(scratch) / "functions.log").open("a", buffering=1) as functions_log,
        contextlib.redirect_stdout(functions_log),
    ):
        log("starting the local stack")
        options = {"visibility_timeout": VISIBILITY_TIMEOUT, "batching_window": BATCHING_WINDOW}
        with local_stack(parameters=dict(PARAMETERS), schedule_interval=SCHEDULE_INTERVAL, **options) as stack:
            log(f"stack up in {stack.startup_seconds:.1f} s")
            with api_client(stack, timeout=30) as api:
                api.post("/v1/predictions", json={"inputs": "warm-up"}, headers={"Prefer": "wait=20"})
                run = FaultRun(stack, api, args.per_scenario, args.timeout)
                for scenario in (
                    run.baseline,
                    run.model_failures,
                    run.unavailable,
                    run.duplicates,
                    run.lost_notifications,
                    run.model_killed,  # last: nothing restarts the model server
                ):
                    outcomes.append(scenario())
            log("stopping the local stack")
    total = time.monotonic() - began
    report = render(outcomes, stack.startup_seconds, total, args)
    publish(report, args.output)
    log(f"total {total:.1f} s; wrote {args.output}")
    return 0 if all(not o.problems for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
