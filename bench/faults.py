"""Fault run on the local stack: predictions under injected faults must all end terminal, each failure with a reason.

    python -m bench.faults [--output bench/results/faults.md] [--per-scenario 30] [--timeout 90]   (make fault-run)

One in-process local stack with short timings (PARAMETERS and the constants below). Scenarios, in this order:
baseline; failed invocations (-> `inference_failed`); endpoint unavailable until SQS's last delivery
(-> `dispatch_failed`), then a second wave that comes back while it is retried (-> succeeded); duplicate work items
and notifications (nothing may change once terminal); lost notifications (the sweeper finishes them); the model
server killed, last, since nothing restarts it (-> `inference_failed`). Predictions are submitted and read over HTTP
until terminal; the first terminal view is kept and compared with a read at the end of the scenario.
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
from bench.harness import TERMINAL, api_client, local_stack, publish
from inference_core.dal.batches import batch_store
from inference_core.dal.predictions import prediction_store
from inference_core.domain.batches import WorkItem
from local_stack.events import async_notification
from local_stack.runner import LocalStack

PARAMETERS = {"MaxReceiveCount": "3", "InvocationTimeoutSeconds": "20", "SweepMarginSeconds": "1"}
VISIBILITY_TIMEOUT = 2
BATCHING_WINDOW = 0.5
SCHEDULE_INTERVAL = 1.0
INVOCATION_TIMEOUT = int(PARAMETERS["InvocationTimeoutSeconds"])
FAILURES, LOST, RECEIVES = 3, 3, PARAMETERS["MaxReceiveCount"]  # model failures and lost notifications injected
# name: (title, faults, expected, what the scenario shows when it goes as designed)
SCENARIOS = {
    "baseline": (
        "Baseline",
        "none",
        "all succeeded",
        "without faults every prediction succeeds with one embedding per input",
    ),
    "model-failures": (
        "Failed invocations",
        f"`model_failures: {FAILURES}` (the next {FAILURES} invocations answer 500 as a broken model)",
        f"the predictions of {FAILURES} batches failed `inference_failed`, the rest succeeded",
        "a broken model fails exactly its batches `inference_failed` with the endpoint's message",
    ),
    "unavailable": (
        "Endpoint unavailable past the retries",
        "`unavailable: true` (InvokeEndpointAsync answers 503) until the first wave is terminal; a second wave is "
        "submitted, refused once, then `unavailable: false`",
        f"first wave failed `dispatch_failed` after {RECEIVES} receives (messages in the request DLQ); "
        "second wave succeeded on a retry",
        "a refused invocation fails `dispatch_failed` once SQS's last delivery is spent (work item in the request "
        "DLQ), and work being retried when the endpoint comes back succeeds",
    ),
    "duplicates": (
        "Duplicate deliveries",
        "every other work item sent again at once (in flight); after all are terminal, 2 more copies of every "
        "work item, a copy of every batch's success notification (success topic) and a late failure "
        "notification for every batch (error topic)",
        "all succeeded, each exactly once: no status or output changes after the first terminal view, no extra "
        "invocations after the end",
        "duplicate work items and success or late failure notifications change nothing and cause no invocation",
    ),
    "lost-notifications": (
        "Dead-lettered notifications",
        f"`lost_notifications: {LOST}` (the next {LOST} successful batches write their output, publish nothing)",
        f"all succeeded; the predictions of {LOST} batches finished by the sweeper from the batch output after "
        f"InvocationTimeoutSeconds + SweepMarginSeconds ({INVOCATION_TIMEOUT + 1} s)",
        "the sweeper completes batches whose notification was lost from their output objects",
    ),
    "model-killed": (
        "Model server killed",
        "a burst of a third of the predictions, SIGKILL to the model server as soon as the endpoint has taken an "
        "invocation, then the rest over 3 s; the server is not restarted",
        "whatever finished before the kill succeeded; the rest failed `inference_failed` (the model container "
        "is unreachable)",
        "a killed model container fails every batch it could not serve `inference_failed`",
    ),
}
STATUSES = ("succeeded", "failed", "cancelled", "expired")  # the terminal ones, in the summary's order
NEEDS_REASON = {"failed", "expired"}
POLL_SECONDS = 0.25
_TEXT = (
    "the quick brown fox jumps over a lazy dog while river water runs past old mountain towns and bright city "
    "lights shine on coffee markets where prices of energy data and cloud music rise fast or slow at night"
)
WORDS = _TEXT.split()


def log(message: str) -> None:
    harness.log(message, "faults")


@dataclass
class Snapshot:
    """What a client sees of a finished prediction; any difference between two reads is a change."""

    status: str
    error_code: str | None
    error_message: str | None
    output: str | None  # digest of the inline output, or "output_url" for an output URL
    completed_at: str | None
    embeddings: int | None
    inference_ms: int | None

    @classmethod
    def of(cls, prediction: dict[str, Any]) -> Snapshot:
        error, output = prediction.get("error") or {}, prediction.get("output")
        shown = "output_url" if prediction.get("output_url") else None
        if output is not None:
            shown = hashlib.sha256(json.dumps(output, sort_keys=True).encode()).hexdigest()[:16]
        embeddings = len(output["embeddings"]) if isinstance(output, dict) and "embeddings" in output else None
        inference_ms = (prediction.get("metrics") or {}).get("inference_ms")
        completed_at = prediction.get("completed_at")
        return cls(
            prediction["status"], error.get("code"), error.get("message"), shown, completed_at, embeddings, inference_ms
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
    design: str  # what the scenario shows when it goes as designed
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

    def as_expected(self) -> bool:
        return not self.deviations and not self.problems

    def expect(self, ok: bool, deviation: str) -> None:
        if not ok:
            self.deviations.append(deviation)

    def expect_all_succeeded(self) -> None:
        self.expect(self.statuses()["succeeded"] == len(self.submitted), "not every prediction succeeded")


class FaultRun:
    def __init__(self, stack: LocalStack, api: httpx.Client, per_scenario: int, timeout: float) -> None:
        assert stack.stack is not None
        self.stack, self.api, self.per_scenario, self.timeout = stack, api, per_scenario, timeout
        self.rng = random.Random(20261123)
        self.sequence = 0
        self.sqs, self.sns = stack.client("sqs"), stack.client("sns")
        self.outputs, self.env = stack.stack.outputs(), stack.stack.env

    def local(self, path: str, **faults: Any) -> dict[str, Any]:
        """The local endpoint's `stats`, or its `faults` set to these values (it answers what was left of them)."""
        url = f"{self.stack.urls['sagemaker']}/_local/{path}"
        response = httpx.request("POST" if faults else "GET", url, json=faults or None, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def queue_depth(self, url_name: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.outputs[url_name], AttributeNames=names)
        return sum(int(attributes["Attributes"][n]) for n in names)

    def dead_letter_depths(self) -> dict[str, int]:
        queues = {"request DLQ": "REQUEST_DEAD_LETTER_QUEUE_URL", "completion DLQ": "COMPLETION_DEAD_LETTER_QUEUE_URL"}
        return {name: self.queue_depth(url_name) for name, url_name in queues.items()}

    def inputs(self, scenario: str) -> list[str]:
        texts = []
        for _ in range(self.rng.randint(1, 8)):
            self.sequence += 1
            words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(4, 24)))
            texts.append(f"{scenario} text {self.sequence}: {words}.")
        return texts

    def submit(
        self, outcome: Outcome, count: int, spread: float, after_each: Callable[[Submitted], None] | None = None
    ) -> None:
        """Submits `count` predictions evenly over `spread` seconds (so they form several batches)."""
        start = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, start + n * spread / max(count, 1) - time.monotonic()))
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
            with contextlib.suppress(httpx.HTTPError):
                response = self.api.get(f"/v1/predictions/{prediction_id}")
                if response.status_code == 200:
                    result: dict[str, Any] = response.json()
                    return result
            time.sleep(0.2)
        return None

    def wait_terminal(self, outcome: Outcome, started: float, limit: float | None = None) -> bool:
        """Reads the predictions not yet seen terminal until all were, or until `limit` seconds after `started` (the
        scenario's time, and never less than half of it after the last submission)."""
        deadline = max(started + (limit or self.timeout), outcome.last_submit + self.timeout / 2)
        while True:
            for prediction_id in outcome.non_terminal():
                prediction = self.read(prediction_id)
                if prediction is None:
                    continue
                outcome.last_status[prediction_id] = prediction["status"]
                if prediction["status"] in TERMINAL:
                    outcome.first[prediction_id] = Snapshot.of(prediction)
                    outcome.seconds_to_terminal = time.monotonic() - started
            if not outcome.non_terminal():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)

    def check(self, outcome: Outcome) -> None:
        stuck = outcome.non_terminal()
        dead_lettered = self.dead_lettered_work() if stuck else set()
        for prediction_id in stuck:
            record = prediction_store().get(prediction_id, consistent=True)  # as stored
            where = "no status record"
            if record is not None:
                started = record.started_at.isoformat() if record.started_at else None
                where = f"stored status `{record.status}`, batch `{record.batch_id}`, started_at {started}"
            outcome.stuck.append((record.status if record else "missing", prediction_id in dead_lettered))
            outcome.problems.append(
                f"`{prediction_id}` did not reach a terminal state within {self.timeout:.0f} s "
                f"(last status `{outcome.last_status.get(prediction_id)}`; {where}; its work "
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
        inputs = {p.id: len(p.inputs) for p in outcome.submitted}
        for prediction_id, s in outcome.final.items():
            if s.status == "succeeded" and s.embeddings != inputs[prediction_id] and s.output != "output_url":
                outcome.problems.append(
                    f"`{prediction_id}` succeeded with {s.embeddings} embeddings for {inputs[prediction_id]} inputs"
                )

    def dead_lettered_work(self) -> set[str]:
        """Prediction ids of the work items in the request DLQ (read, then hidden for the rest of the run)."""
        found: set[str] = set()
        while messages := self.sqs.receive_message(
            QueueUrl=self.outputs["REQUEST_DEAD_LETTER_QUEUE_URL"], MaxNumberOfMessages=10, VisibilityTimeout=900
        ).get("Messages", []):
            for message in messages:
                with contextlib.suppress(ValueError, AttributeError):
                    found.add(str(json.loads(message["Body"]).get("prediction_id")))
        return found

    def wait_for(self, stat: str, before: int, seconds: float, step: float) -> None:
        """Until the endpoint's `stat` counter has moved from `before`, at most `seconds`."""
        deadline = time.monotonic() + seconds
        while self.local("stats")[stat] == before and time.monotonic() < deadline:
            time.sleep(step)

    def steady(self, spread: float, **faults: Any) -> Callable[[Outcome, float], None]:
        """A scenario's body: these faults set, then its predictions submitted evenly over `spread` seconds."""

        def body(o: Outcome, started: float) -> None:
            if faults:
                self.local("faults", **faults)
            self.submit(o, self.per_scenario, spread)

        return body

    def scenario(self, name: str, body: Callable[[Outcome, float], None]) -> Outcome:
        outcome = Outcome(name, *SCENARIOS[name])
        log(f"scenario {outcome.name}: {outcome.title}")
        before, dead_before = self.local("stats"), self.dead_letter_depths()
        started = time.monotonic()
        try:
            body(outcome, started)
        finally:
            leftover = self.local("faults", model_failures=0, unavailable=False, lost_notifications=0)
        # The rest of the time to finish; then every prediction read once more, as a client would see it.
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
        after, dead_after = self.local("stats"), self.dead_letter_depths()
        outcome.endpoint = {k: after[k] - before[k] for k in ("invocations", "succeeded", "failed", "rejected")}
        outcome.dead_letters = {k: dead_after[k] - dead_before[k] for k in dead_after}
        self.check(outcome)
        outcome.notes.append(
            f"faults left unused at the end: model_failures {leftover['model_failures']}, "
            f"lost_notifications {leftover['lost_notifications']}"
        )
        log(
            f"  {len(outcome.submitted)} submitted: {_counts(outcome.statuses())}; non-terminal "
            f"{len(outcome.non_terminal())}; {_seconds(outcome.seconds_to_terminal)} s; problems {len(outcome.problems)}"
        )
        return outcome

    # ------------------------------------------------------------------ scenarios (described in SCENARIOS)
    def baseline(self) -> Outcome:
        outcome = self.scenario("baseline", self.steady(spread=3))
        outcome.expect_all_succeeded()
        return outcome

    def model_failures(self) -> Outcome:
        outcome = self.scenario("model-failures", self.steady(spread=6, model_failures=FAILURES))
        if set(outcome.error_codes()) != {"inference_failed"} or outcome.endpoint["failed"] != FAILURES:
            outcome.deviations.append(f"expected {FAILURES} failed batches, all `inference_failed`")
        outcome.expect(bool(outcome.statuses()["succeeded"]), "nothing succeeded after the failures were used up")
        return outcome

    def unavailable(self) -> Outcome:
        first_wave = max(1, self.per_scenario * 3 // 4)
        second: set[str] = set()

        def body(o: Outcome, started: float) -> None:
            self.local("faults", unavailable=True)
            self.submit(o, first_wave, spread=2)
            if not self.wait_terminal(o, started, limit=self.timeout / 2):
                o.notes.append("the first wave was not all terminal in time; the endpoint came back anyway")
            seen, rejected_before = len(o.submitted), self.local("stats")["rejected"]
            self.submit(o, self.per_scenario - first_wave, spread=0.5)
            second.update(p.id for p in o.submitted[seen:])
            self.wait_for("rejected", rejected_before, seconds=10, step=0.1)
            time.sleep(0.5)
            o.notes.append(f"endpoint back after {time.monotonic() - started:.1f} s")
            self.local("faults", unavailable=False)

        outcome = self.scenario("unavailable", body)
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
        # The sweeper's message names the attempts too: the DLQ is what tells them apart.
        by_sweeper = sum("dead-letter queue" in m for m in messages)
        by_dispatcher = sum(f"after {RECEIVES} attempts" in m and "dead-letter queue" not in m for m in messages)
        outcome.notes.append(f"`dispatch_failed` set by the dispatcher {by_dispatcher}, by the sweeper {by_sweeper}")
        if by_dispatcher + by_sweeper != len(messages):
            outcome.deviations.append("a `dispatch_failed` message names neither the attempts nor the DLQ")
        if (grown := outcome.dead_letters.get("request DLQ", 0)) < len(first_ids):
            outcome.notes.append(
                f"request DLQ grew by {grown} for {len(first_ids)} dead-lettered work items (SQS moves a message on "
                "the receive after the last; it may still be pending)"
            )
        return outcome

    def duplicates(self) -> Outcome:
        bodies: dict[str, str] = {}
        batch_ids: set[str] = set()
        sent = Counter[str]()
        env, queue = self.env, self.env["REQUEST_QUEUE_URL"]

        def duplicate_now(submitted: Submitted) -> None:
            record = prediction_store().get(submitted.id, consistent=True)
            assert record is not None
            created_at = datetime.fromisoformat(submitted.created_at)
            item = WorkItem(
                prediction_id=submitted.id, tenant_id=record.tenant_id, created_at=created_at, inputs=submitted.inputs
            )
            bodies[submitted.id] = item.model_dump_json()
            if len(bodies) % 2:
                self.sqs.send_message(QueueUrl=queue, MessageBody=bodies[submitted.id])
                sent["work items in flight"] += 1

        def body(o: Outcome, started: float) -> None:
            self.submit(o, self.per_scenario, spread=3, after_each=duplicate_now)
            if not self.wait_terminal(o, started):
                o.notes.append("not all terminal before the late duplicates")
            invocations = self.local("stats")["invocations"]
            for body_text in bodies.values():
                for _ in range(2):
                    self.sqs.send_message(QueueUrl=queue, MessageBody=body_text)
                    sent["work items after the end"] += 1
            batch_ids.update(r.batch_id for i in bodies if (r := prediction_store().get(i)) is not None and r.batch_id)
            location = f"s3://{env['BUCKET_NAME']}/"
            for batch_id in sorted(batch_ids):
                if (batch := batch_store().get(batch_id)) is None:
                    o.notes.append(f"batch `{batch_id}` has no batch record")
                    continue
                common: dict[str, Any] = {"inference_id": batch_id, "endpoint_name": env["ENDPOINT_NAME"]}
                common["input_location"] = batch.input_location
                output_location = f"{location}{env['BATCH_OUTPUT_PREFIX']}{batch_id}.out"
                success = async_notification(**common, output_location=output_location)
                self.sns.publish(TopicArn=self.outputs["SUCCESS_TOPIC_ARN"], Message=success)
                sent["success notifications"] += 1
                failure = async_notification(
                    **common,
                    failure_location=f"{location}{env['BATCH_FAILURE_PREFIX']}{batch_id}-error.out",
                    failure_reason="ModelError: injected late failure notification",
                )
                self.sns.publish(TopicArn=self.outputs["ERROR_TOPIC_ARN"], Message=failure)
                sent["late failure notifications"] += 1
            # Let every copy be received and dropped: both queues empty, then a little longer.
            deadline, quiet_since = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                if self.queue_depth("REQUEST_QUEUE_URL") + self.queue_depth("COMPLETION_QUEUE_URL"):
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 2 * VISIBILITY_TIMEOUT:
                    break
                time.sleep(0.25)
            else:
                o.notes.append("the queues were not empty 30 s after the late duplicates")
            extra = self.local("stats")["invocations"] - invocations
            o.notes.append(f"endpoint invocations caused by the late duplicates: {extra}")
            o.expect(not extra, f"{extra} extra invocations after every prediction was terminal")
            o.notes.append(f"{len(batch_ids)} batches carried the {len(o.submitted)} predictions")

        outcome = self.scenario("duplicates", body)
        outcome.notes.insert(0, "sent: " + ", ".join(f"{v} {k}" for k, v in sent.items()))
        if outcome.endpoint["invocations"] != len(batch_ids):
            outcome.deviations.append("endpoint invocations differ from the number of batches: a duplicate was invoked")
        outcome.expect_all_succeeded()
        return outcome

    def lost_notifications(self) -> Outcome:
        outcome = self.scenario("lost-notifications", self.steady(spread=6, lost_notifications=LOST))
        swept = [i for i, s in outcome.final.items() if (s.inference_ms or 0) >= INVOCATION_TIMEOUT * 1000]
        outcome.notes.append(
            f"{len(swept)} predictions finished {INVOCATION_TIMEOUT} s or more after they started (by the sweeper)"
        )
        outcome.expect_all_succeeded()
        outcome.expect(bool(swept), "no prediction was finished by the sweeper")
        return outcome

    def model_killed(self) -> Outcome:
        def body(o: Outcome, started: float) -> None:
            before, burst = self.local("stats")["invocations"], max(1, self.per_scenario // 3)
            self.submit(o, burst, spread=0)
            self.wait_for("invocations", before, seconds=15, step=0.02)
            stats, model = self.local("stats"), self.stack._model
            assert model is not None
            model.kill()
            model.wait(timeout=10)
            terminal = sum(1 for p in o.submitted if (s := self.read(p.id)) and s["status"] in TERMINAL)
            o.notes.append(
                f"killed at {time.monotonic() - started:.1f} s: {stats['invocations'] - before} invocation(s) taken "
                f"by the endpoint, {stats['succeeded'] + stats['failed'] - before} finished before, {terminal} of "
                f"{burst} predictions terminal just after the kill"
            )
            self.submit(o, self.per_scenario - burst, spread=3)

        outcome = self.scenario("model-killed", body)
        codes = outcome.error_codes()
        outcome.expect(not set(codes) - {"inference_failed"}, f"failures other than `inference_failed`: {dict(codes)}")
        outcome.expect(bool(codes), "nothing failed after the kill")
        return outcome


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _counts(counts: Counter[str], code: bool = False) -> str:
    return ", ".join(f"`{k}` {v}" if code else f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _table(header: str, align: str, rows: list[list[Any]]) -> list[str]:
    """A Markdown table; `align` has one letter per column, l(eft) or r(ight); None is a blank cell."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return [f"| {header} |", rule, *("|" + "|".join(" " if c is None else f" {c} " for c in row) + "|" for row in rows)]


def render(outcomes: list[Outcome], startup: float, total: float, args: argparse.Namespace) -> str:
    columns = ("submitted", *STATUSES, "non-terminal", "without reason", "changed")
    totals: Counter[str] = Counter()
    rows = []
    for o in outcomes:
        statuses = o.statuses()
        counts = [len(o.submitted), *(statuses[s] for s in STATUSES), len(o.non_terminal())]
        counts += [len(o.without_reason()), len(o.changed())]
        totals.update(dict(zip(columns, counts, strict=True)))
        codes = _counts(o.error_codes(), code=True)
        rows.append([o.title, *counts, _seconds(o.seconds_to_terminal), codes, _yes(o.as_expected())])
    all_codes = _counts(sum((o.error_codes() for o in outcomes), Counter()), code=True)
    fine = all(o.as_expected() for o in outcomes)
    rows.append(["**total**", *(f"**{totals[c]}**" for c in columns), None, all_codes, f"**{_yes(fine)}**"])
    problems = [(o, p) for o in outcomes for p in o.problems]
    if not problems:
        verdict = (
            f"All {totals['submitted']} predictions reached a terminal state, every failure carries an error code "
            "and message, and no prediction changed after it was first seen terminal."
        )
    else:
        verdict = (
            f"{len(problems)} product problem(s) were found (listed below): {totals['non-terminal']} prediction(s) "
            f"did not reach a terminal state, {totals['without reason']} ended without a reason and "
            f"{totals['changed']} changed after they were terminal."
        )
    sentences = [verdict]
    stuck = Counter((o.title, status, in_dlq) for o in outcomes for status, in_dlq in o.stuck)
    if stuck:
        parts = [
            f"{count} in *{title}* stored `{status}` with its work item {'' if in_dlq else 'not '}in the request DLQ"
            for (title, status, in_dlq), count in sorted(stuck.items())
        ]
        sentences.append(
            "Left non-terminal: " + "; ".join(parts) + " (a `queued` record whose work item is dead-lettered is "
            "dispatched by nothing: the sweeper only expires it after PredictionTtlSeconds, and then as `expired`, "
            "not as the failure it was)."
        )
    if good := [o.design for o in outcomes if o.as_expected()]:
        sentences.append("As designed: " + "; ".join(good) + ".")
    if bad := [f"*{o.title}*" for o in outcomes if not o.as_expected()]:
        sentences.append("Not as designed: " + ", ".join(bad) + " (see its table and the problems list).")
    sentences.append(
        f"Stack start-up took {startup:.1f} s and the whole run {total:.0f} s; times depend on this machine (2 cores, "
        "the model on CPU, whatever else runs on it)."
    )
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
        *_table(
            "scenario | submitted | succeeded | failed | cancelled | expired | non-terminal | without reason | "
            "changed after terminal | time to all terminal (s) | error codes | as expected",
            "lrrrrrrrrrll",
            rows,
        ),
        "",
        " ".join(sentences),
        "",
    ]
    for n, o in enumerate(outcomes, 1):
        messages = Counter((s.error_code, s.error_message) for s in o.final.values() if s.error_code)
        top = sorted(messages.items(), key=lambda m: (str(m[0][0]), -m[1]))[:6]
        measures: list[list[Any]] = [
            ["faults", o.faults],
            ["expected", o.expected],
            ["submitted", f"{len(o.submitted)} ({sum(len(p.inputs) for p in o.submitted)} inputs)"],
            ["terminal by status", _counts(o.statuses())],
            ["error codes", _counts(o.error_codes(), code=True)],
            *(
                [f"message of `{code}` ({count})", (message or "").replace("|", "\\|")]
                for (code, message), count in top
            ),
            ["non-terminal at the end", len(o.non_terminal())],
            ["failed/expired without reason", len(o.without_reason())],
            ["changed after first terminal", len(o.changed())],
            ["time to all terminal", f"{_seconds(o.seconds_to_terminal)} s"],
            ["endpoint", ", ".join(f"{k} {v}" for k, v in o.endpoint.items())],
            ["dead-letter queues (growth)", ", ".join(f"{k} +{v}" for k, v in o.dead_letters.items())],
            *(["note", note] for note in o.notes),
            ["as expected", _yes(o.as_expected())],
            *(["deviation", deviation] for deviation in o.deviations),
        ]
        lines += [f"## {n}. {o.title} (`{o.name}`)", "", *_table("measure | value", "ll", measures), ""]
    lines += ["## Problems found (product bugs)", ""]
    if problems:
        lines += [f"- {o.title} (`{o.name}`): {p}" for o, p in problems]
    else:
        lines.append("None: no prediction was left non-terminal, ended without a reason, or changed once terminal.")
    return "\n".join([*lines, ""])


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
                scenarios = (run.baseline, run.model_failures, run.unavailable, run.duplicates, run.lost_notifications)
                outcomes = [scenario() for scenario in (*scenarios, run.model_killed)]  # last: nothing restarts it
            log("stopping the local stack")
    total = time.monotonic() - began
    publish(render(outcomes, stack.startup_seconds, total, args), args.output)
    log(f"total {total:.1f} s; wrote {args.output}")
    return 0 if all(not o.problems for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
