"""Event pumps that behave like Lambda's SQS event source mappings, calling the real handler functions.

Each poller long-polls its queue, gathers up to BatchSize records within MaximumBatchingWindowInSeconds (both
from template.yaml), calls the handler with the exact event Lambda sends, deletes only the records that did
not fail (ReportBatchItemFailures) and leaves the rest to come back after the visibility timeout, until the
queue's redrive policy moves them to the DLQ. Several pollers per event source run at once, as Lambda scales out,
never more than the event's ScalingConfig.MaximumConcurrency.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.events import sqs_event
from local_stack.template import Resolver, resources_of_type, sqs_event_sources

log = logging.getLogger("local_stack.pumps")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class FakeContext:
    """The Lambda context object the handlers' Powertools decorators read."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class PumpSpec:
    function: str
    event: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window_seconds: float
    reports_failures: bool
    handler_file: Path
    handler_name: str
    max_concurrency: int | None = None


@dataclass
class PumpStats:
    invocations: int = 0
    records: int = 0
    failed_records: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def pump_specs(resolver: Resolver, window_override: float | None = None) -> list[PumpSpec]:
    """One spec per SQS event source in template.yaml."""
    specs = []
    for source in sqs_event_sources(resolver.template):
        function, props = source.function, source.properties
        resource = resolver.template["Resources"][function]["Properties"]
        concurrency = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
        module, handler_name = resource["Handler"].rsplit(".", 1)
        queue_logical = props["Queue"]["Fn::GetAtt"][0]
        window = float(resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0)))
        specs.append(
            PumpSpec(
                function=function,
                event=source.event,
                queue_url=resolver.physical[queue_logical]["Ref"],
                queue_arn=resolver.physical[queue_logical]["Arn"],
                batch_size=int(resolver.resolve(props.get("BatchSize", 10))),
                window_seconds=window if window_override is None else window_override,
                reports_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                handler_file=REPO / resource["CodeUri"] / f"{module.replace('.', '/')}.py",
                handler_name=handler_name,
                max_concurrency=None if concurrency is None else int(resolver.resolve(concurrency)),
            )
        )
    return specs


def load_handler(spec: PumpSpec, instance: int) -> Any:
    return load_function(f"{spec.function}_{spec.event}", spec.handler_file, spec.handler_name, instance)


def load_function(function: str, handler_file: Path, handler_name: str, instance: int) -> Any:
    """A fresh copy of the handler module per poller, like one Lambda execution environment each."""
    name = f"local_{function}_{instance}"
    module_spec = importlib.util.spec_from_file_location(name, handler_file)
    assert module_spec
    assert module_spec.loader
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, handler_name)


class Poller(threading.Thread):
    def __init__(self, spec: PumpSpec, instance: int, sqs: Any, stop: threading.Event, stats: PumpStats) -> None:
        super().__init__(name=f"{spec.function}-{spec.event}-{instance}", daemon=True)
        self.spec = spec
        self.handler = load_handler(spec, instance)
        self.sqs = sqs
        self.stop_event = stop
        self.stats = stats
        # Set while the function's event sources are disabled (UpdateEventSourceMapping Enabled=false in Lambda).
        self.disabled = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self.disabled.is_set():
                self.stop_event.wait(0.05)
                continue
            try:
                batch = self._gather()
                if batch:
                    self._invoke(batch)
            except Exception:
                log.exception("poller %s failed; retrying", self.name)
                with self.stats.lock:
                    self.stats.errors += 1
                self.stop_event.wait(1)

    def _gather(self) -> list[dict[str, Any]]:
        """Long-poll until a record arrives, then keep collecting until BatchSize or the window closes."""
        batch: list[dict[str, Any]] = []
        deadline: float | None = None
        while not self.stop_event.is_set() and not self.disabled.is_set() and len(batch) < self.spec.batch_size:
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = 1 if remaining >= 1 else 0  # 1 s long polls keep shutdown prompt
            response = self.sqs.receive_message(
                QueueUrl=self.spec.queue_url,
                MaxNumberOfMessages=min(10, self.spec.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            batch.extend(messages)
            if messages and deadline is None:
                deadline = time.monotonic() + self.spec.window_seconds
            elif not messages and wait == 0:
                time.sleep(min(0.05, remaining))
        return batch

    def _invoke(self, batch: list[dict[str, Any]]) -> None:
        event = sqs_event(batch, self.spec.queue_arn)
        failed: set[str]
        try:
            result = self.handler(event, FakeContext(self.spec.function))
            failures = (result or {}).get("batchItemFailures", []) if self.spec.reports_failures else []
            failed = {f["itemIdentifier"] for f in failures}
        except Exception:
            # A handler that raises fails the whole batch, as in Lambda.
            log.exception("%s raised; the whole batch will be retried", self.spec.function)
            failed = {m["MessageId"] for m in batch}
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.spec.queue_url, Entries=entries)
        with self.stats.lock:
            self.stats.invocations += 1
            self.stats.records += len(batch)
            self.stats.failed_records += len(failed)


def start_pumps(
    specs: list[PumpSpec], sqs: Any, stop: threading.Event, pollers_per_function: int
) -> tuple[list[Poller], dict[str, PumpStats]]:
    pollers: list[Poller] = []
    stats: dict[str, PumpStats] = {}
    for spec in specs:
        function_stats = stats.setdefault(spec.function, PumpStats())  # a function's events count together
        for instance in range(min(pollers_per_function, spec.max_concurrency or pollers_per_function)):
            poller = Poller(spec, instance, sqs, stop, function_stats)
            poller.start()
            pollers.append(poller)
    return pollers, stats


@dataclass
class ScheduleSpec:
    function: str
    handler_file: Path
    handler_name: str
    interval_seconds: float


def schedule_specs(resolver: Resolver, interval_seconds: float) -> list[ScheduleSpec]:
    """One spec per function with a Schedule event in template.yaml. Locally every schedule fires every
    `interval_seconds` (a `rate(5 minutes)` would make tests and demos wait)."""
    specs = []
    for function, resource in resources_of_type(resolver.template, "AWS::Serverless::Function").items():
        properties = resource["Properties"]
        if not any(event["Type"] == "Schedule" for event in properties.get("Events", {}).values()):
            continue
        module, handler_name = properties["Handler"].rsplit(".", 1)
        handler_file = REPO / properties["CodeUri"] / f"{module.replace('.', '/')}.py"
        specs.append(ScheduleSpec(function, handler_file, handler_name, interval_seconds))
    return specs


def scheduled_event(function: str) -> dict[str, Any]:
    """EventBridge's scheduled event, as Lambda receives it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{function}-schedule"],
        "detail": {},
    }


class Scheduler(threading.Thread):
    def __init__(self, spec: ScheduleSpec, stop: threading.Event, stats: PumpStats) -> None:
        super().__init__(name=f"{spec.function}-schedule", daemon=True)
        self.spec = spec
        self.handler = load_function(spec.function, spec.handler_file, spec.handler_name, 0)
        self.stop_event = stop
        self.stats = stats

    def run(self) -> None:
        while not self.stop_event.wait(self.spec.interval_seconds):
            try:
                self.handler(scheduled_event(self.spec.function), FakeContext(self.spec.function))
            except Exception:
                log.exception("%s raised", self.spec.function)
                with self.stats.lock:
                    self.stats.errors += 1
            with self.stats.lock:
                self.stats.invocations += 1


def start_schedules(specs: list[ScheduleSpec], stop: threading.Event) -> tuple[list[Scheduler], dict[str, PumpStats]]:
    stats = {spec.function: PumpStats() for spec in specs}
    schedulers = [Scheduler(spec, stop, stats[spec.function]) for spec in specs]
    for scheduler in schedulers:
        scheduler.start()
    return schedulers, stats
