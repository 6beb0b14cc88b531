"""Capacity simulation: bulk jobs on a scaling SageMaker asynchronous endpoint, in simulated time.

    python -m bench.scale [--lines 10000000] [--startup-minutes 6] [--items-per-second 3000] [--no-baseline]

The product's decisions run unchanged (`ChunkScheduler`: fill loop, fair choice, per-job share; `bulk_places`: the
gate; `bulk_backlog`: the bulk scaling metric) with the template's defaults. Modelled around them: the asynchronous
endpoint (a FIFO queue, MaxConcurrentInvocationsPerInstance, S3 fetch and write, a GPU that runs interactive batches
before bulk slices, start-up time), the completion function and sweeper settling as job_driver.settle does, and
CloudWatch and Application Auto Scaling (the template's two target tracking policies and its step policy from zero).
Writes bench/results/scale.md and prints it. Deterministic (seeded): a run is a few seconds of CPU.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import met, publish
from inference_core.domain.capacity import bulk_backlog, bulk_places
from inference_core.domain.jobs import Claim, ClaimResult, Job, JobSource, JobStatus
from inference_core.logic import job_scheduling
from inference_core.logic.job_scheduling import ChunkScheduler, InPlace
from local_stack.template import load_template

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "scale.md"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
JOB_MAX_LINES = 1_000_000  # a job file's line limit (JobMaxLines): a 10M-line workload is ten files at once


class _NoMetrics:
    """The scheduler counts launches in CloudWatch metrics; the simulation has no use for them."""

    def add_metric(self, **_: Any) -> None:
        pass


@dataclass(frozen=True)
class Params:
    # From the template's parameter defaults (read at start).
    per_instance: int
    cap: int
    chunk_inputs: int
    bulk_target: float
    backlog_target: float
    sweep_seconds: float
    max_instances: int = 8
    # Measured or documented figures; see the report's parameter table for the source of each.
    items_per_second: float = 3000.0
    startup_seconds: float = 360.0
    slice_texts: int = 128
    fetch_seconds: float = 0.03
    bytes_out_per_input: float = 3600.0
    s3_write_mb_per_second: float = 50.0
    endpoint_overhead_seconds: float = 0.1
    notify_seconds: float = 0.3
    finish_seconds: float = 0.83
    launch_seconds: float = 0.2
    capacity_cache_seconds: float = 30.0
    interactive_per_second: float = 2.0
    interactive_inputs: int = 32
    scale_out_cooldown: float = 120.0
    scale_in_cooldown: float = 600.0
    step_cooldown: float = 300.0
    metric_lag: float = 60.0


def template_params() -> Params:
    default = {name: spec.get("Default") for name, spec in load_template()["Parameters"].items()}
    amount, unit = str(default["SweepSchedule"]).removeprefix("rate(").removesuffix(")").split()  # "rate(1 minute)"
    return Params(
        per_instance=int(default["MaxConcurrentInvocationsPerInstance"]),
        cap=int(default["JobMaxInFlightChunks"]),
        chunk_inputs=int(default["JobChunkMaxInputs"]),
        bulk_target=float(default["BulkBacklogSecondsTarget"]),
        backlog_target=float(default["BacklogPerInstanceTarget"]),
        sweep_seconds=float(amount) * (60 if unit.startswith("minute") else 3600 if unit.startswith("hour") else 1),
    )


@dataclass
class Invocation:
    inputs: int
    arrived: float
    job: Job | None = None  # None: an interactive batch
    chunk: int = -1
    slices_left: int = 0


@dataclass
class Instance:
    ready_at: float
    active: int = 0
    gpu_busy: bool = False
    interactive: deque[Invocation] = field(default_factory=deque)
    bulk: deque[Invocation] = field(default_factory=deque)

    def in_service(self, now: float) -> bool:
        return now >= self.ready_at


class Sim:
    """One run: the endpoint, the jobs, the functions and the scaling, on one event queue."""

    def __init__(self, params: Params, seed: int = 7) -> None:
        self.p = params
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.rng = random.Random(seed)
        self.queue: deque[Invocation] = deque()
        self.instances: list[Instance] = []
        self.capacity = 0  # the scalable target's desired count
        self.jobs: list[Job] = []
        self.finished_at: dict[str, float] = {}
        self.gate = 0
        self.reading = (0, float("-inf"))  # instances in service as last read, and when
        self.bulk_points: dict[int, float] = {}  # minute -> Maximum of what was published
        self.backlog_samples: dict[int, list[float]] = {}
        self.no_capacity: dict[int, bool] = {}
        self.last_out = self.last_in = self.last_step = float("-inf")
        self.done_log: list[tuple[float, int]] = []  # (time, bulk inputs finished) per chunk
        self.capacity_log: list[tuple[float, int, int]] = [(0.0, 0, 0)]  # (time, desired, in service)
        self.interactive_times: list[tuple[float, float]] = []  # (arrived, seconds at the endpoint)
        self.interactive_until = 0.0
        job_scheduling.metrics = _NoMetrics()  # type: ignore[attr-defined,assignment]

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action))

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            self.now, _, action = heapq.heappop(self.events)
            action()

    def start(self) -> None:
        """The clocks: endpoint metrics every 10 s, scaling each minute, the sweeper on its schedule."""
        self.at(0, self.sample)
        self.at(60, self.scale)
        self.at(self.p.sweep_seconds, self.sweep)

    def dt(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now)

    def in_service(self) -> int:
        return sum(1 for i in self.instances if i.in_service(self.now))

    # -- jobs and the product's decisions

    def submit(self, tenant: str, lines: int, name: str) -> None:
        job = Job(
            id=name,
            tenant_id=tenant,
            status=JobStatus.IN_PROGRESS,
            created_at=self.dt(),
            source=JobSource.API,
            input_key="",
            results_base="",
            planned=True,
            total=lines,
            input_count=lines,
            chunk_count=math.ceil(lines / self.p.chunk_inputs),
        )
        self.jobs.append(job)
        self.settle()

    def instances_read(self) -> int:
        """logic.capacity.instances_in_service: DescribeEndpoint, kept for endpoint_capacity_seconds."""
        if self.now - self.reading[1] >= self.p.capacity_cache_seconds:
            self.reading = (self.in_service(), self.now)
        return self.reading[0]

    def settle(self) -> None:
        """What job_driver.settle does after a notification or a sweep: fill the free places, publish the
        backlog."""
        active = [job for job in self.jobs if job.status is JobStatus.IN_PROGRESS]
        instances = self.instances_read()
        places = bulk_places(instances, self.p.per_instance, self.p.cap)
        scheduler = ChunkScheduler(active, places, _Ports(self), self.dt())
        while scheduler.has_work and scheduler.fill().launched:
            pass
        backlog = bulk_backlog(active, self.p.items_per_second, instances)
        minute = int(self.now // 60)
        self.bulk_points[minute] = max(self.bulk_points.get(minute, 0.0), backlog.seconds_per_instance)

    def chunk_done(self, job: Job, chunk: int, inputs: int) -> None:
        """The completion function: finish the chunk (its place back), then settle."""
        job.running.pop(chunk, None)
        job.done_chunks.add(chunk)
        job.completed += inputs
        self.gate -= 1
        self.done_log.append((self.now, inputs))
        if not job.chunks_left and not job.running:
            job.status = JobStatus.COMPLETED
            self.finished_at[job.id] = self.now
        self.settle()

    def sweep(self) -> None:
        self.settle()
        self.at(self.now + self.p.sweep_seconds, self.sweep)

    # -- the endpoint

    def arrive(self, invocation: Invocation) -> None:
        self.queue.append(invocation)
        self.dispatch()

    def dispatch(self) -> None:
        while self.queue:
            free = [i for i in self.instances if i.in_service(self.now) and i.active < self.p.per_instance]
            if not free:
                return
            instance = min(free, key=lambda i: i.active)
            instance.active += 1
            fetched = self.now + self.p.endpoint_overhead_seconds + self.p.fetch_seconds
            self.at(fetched, partial(self.model, instance, self.queue.popleft()))

    def model(self, instance: Instance, invocation: Invocation) -> None:
        if invocation.job is None:
            instance.interactive.append(invocation)
        else:
            invocation.slices_left = math.ceil(invocation.inputs / self.p.slice_texts)
            instance.bulk.append(invocation)
        self.gpu(instance)

    def gpu(self, instance: Instance) -> None:
        """The container's batcher: interactive work first, then one slice of the next bulk invocation in turn."""
        if instance.gpu_busy or not (instance.interactive or instance.bulk):
            return
        if instance.interactive:
            invocation = instance.interactive.popleft()
            texts, last = invocation.inputs, True
        else:
            invocation = instance.bulk.popleft()
            invocation.slices_left -= 1
            last = invocation.slices_left == 0
            done_before = math.ceil(invocation.inputs / self.p.slice_texts) - invocation.slices_left - 1
            texts = min(self.p.slice_texts, invocation.inputs - done_before * self.p.slice_texts)
            if not last:
                instance.bulk.append(invocation)
        instance.gpu_busy = True

        def slice_done() -> None:
            instance.gpu_busy = False
            if last:
                write = invocation.inputs * self.p.bytes_out_per_input / (self.p.s3_write_mb_per_second * 1e6)
                self.at(self.now + 0.02 + write, partial(self.output_written, instance, invocation))
            self.gpu(instance)

        self.at(self.now + texts / self.p.items_per_second, slice_done)

    def output_written(self, instance: Instance, invocation: Invocation) -> None:
        instance.active -= 1
        if invocation.job is None:
            self.interactive_times.append((invocation.arrived, self.now - invocation.arrived))
        else:
            done = partial(self.chunk_done, invocation.job, invocation.chunk, invocation.inputs)
            self.at(self.now + self.p.notify_seconds + self.p.finish_seconds, done)
        self.dispatch()

    def interactive(self) -> None:
        if self.now < self.interactive_until:
            self.arrive(Invocation(self.p.interactive_inputs, self.now))
            self.at(self.now + self.rng.expovariate(self.p.interactive_per_second), self.interactive)

    # -- CloudWatch and Application Auto Scaling

    def sample(self) -> None:
        """SageMaker's own endpoint metrics, sampled every 10 s."""
        minute = int(self.now // 60)
        serving = self.in_service()
        backlog = len(self.queue) + sum(i.active for i in self.instances)
        if serving:
            self.backlog_samples.setdefault(minute, []).append(backlog / serving)
        self.no_capacity[minute] = self.no_capacity.get(minute, False) or (backlog > 0 and serving == 0)
        self.at(self.now + 10, self.sample)

    def scale(self) -> None:
        """Each minute, the alarms on the datapoints of the minutes before (seen `metric_lag` late)."""
        last = int((self.now - self.p.metric_lag) // 60)
        if last >= 0:
            self._evaluate(last)
        self.at(self.now + 60, self.scale)

    def _evaluate(self, last: int) -> None:
        minutes = range(0, last + 1)
        bulk: list[float | None] = [self.bulk_points.get(m, 0.0) for m in minutes]  # FILL(waiting, 0)
        backlog = [statistics.fmean(self.backlog_samples[m]) if m in self.backlog_samples else None for m in minutes]
        wanted_out: list[int] = []
        ready_in: list[int | None] = []
        for points, target in ((bulk, self.p.bulk_target), (backlog, self.p.backlog_target)):
            # Target tracking: a high alarm on 3 datapoints above the target, a low one on 15 below 90% of it.
            wanted = math.ceil(self.capacity * (points[-1] or 0) / target)
            high, low = points[-3:], points[-15:]
            if len(high) == 3 and all(v is not None and v > target for v in high):
                wanted_out.append(wanted)
            low_ok = len(low) == 15 and all(v is not None and v < 0.9 * target for v in low)
            ready_in.append(wanted if low_ok else None)
        # Desired capacity is ceil(capacity x metric / target): out when either policy asks, in only when both agree.
        desired = self.capacity
        if wanted_out and max(wanted_out) > self.capacity:
            desired = min(self.p.max_instances, max(wanted_out))
            self.last_out = self.now
        elif (
            all(v is not None for v in ready_in)
            and self.now - self.last_in >= self.p.scale_in_cooldown
            and self.now - self.last_out >= self.p.scale_out_cooldown
        ):
            lower = max(v for v in ready_in if v is not None)
            if lower < self.capacity:
                desired, self.last_in = lower, self.now
        # The step policy: HasBacklogWithoutCapacity on 2 of 2 datapoints, +1.
        if (
            last >= 1
            and self.no_capacity.get(last, False)
            and self.no_capacity.get(last - 1, False)
            and self.now - self.last_step >= self.p.step_cooldown
            and desired == 0
        ):
            desired, self.last_step = 1, self.now
        self._set_capacity(desired)

    def _set_capacity(self, desired: int) -> None:
        if desired == self.capacity:
            return
        if desired > self.capacity:
            for _ in range(desired - self.capacity):
                self.instances.append(Instance(ready_at=self.now + self.p.startup_seconds))
                self.at(self.now + self.p.startup_seconds, self.dispatch)
        else:
            # Starting instances go first, then idle ones; SageMaker drains a busy one before it goes.
            order = sorted(self.instances, key=lambda i: (i.in_service(self.now), i.active))
            for instance in order[: self.capacity - desired]:
                self.instances.remove(instance)
        self.capacity = desired
        self.capacity_log.append((self.now, desired, self.in_service()))


class _Ports:
    """job_scheduling.Ports over the simulation: the gate's and the job's conditions (as the store's transaction
    checks them), and an InvokeEndpointAsync that reaches the endpoint's queue after the launch's work."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.sent = 0

    def claim(self, job: Job, places: int, now: datetime) -> ClaimResult:
        if self.sim.gate >= places:
            return ClaimResult(Claim.GATE_FULL)
        if job.status is not JobStatus.IN_PROGRESS or not job.chunks_left:
            return ClaimResult(Claim.REFUSED)
        self.sim.gate += 1
        return ClaimResult(Claim.CLAIMED, job.next_chunk)

    def refresh(self, job_id: str) -> Job | None:
        return next((job for job in self.sim.jobs if job.id == job_id), None)

    def send(self, job: Job, chunk: int, now: datetime) -> InPlace | None:
        sim = self.sim
        self.sent += 1
        inputs = min(sim.p.chunk_inputs, job.input_count - chunk * sim.p.chunk_inputs)
        invocation = Invocation(inputs, sim.now + self.sent * sim.p.launch_seconds, job, chunk)
        sim.at(invocation.arrived, partial(sim.arrive, invocation))
        return None


# -- scenarios ------------------------------------------------------------------------------------------------


@dataclass
class BulkRun:
    max_instances: int
    lines: int
    total_s: float
    steady_items_per_s: float
    to_zero_s: float | None
    peak_instances: int
    interactive_p99_s: float | None
    sim_seconds: float


def bulk_run(params: Params, lines: int, max_instances: int, interactive: bool = True, warm: bool = False) -> BulkRun:
    """`warm`: the endpoint already has `max_instances` in service when the files arrive."""
    started = time.process_time()
    p = replace(params, max_instances=max_instances)
    sim = Sim(p)
    if warm:
        sim.instances = [Instance(ready_at=0.0) for _ in range(max_instances)]
        sim.capacity = max_instances
    sim.start()
    jobs = math.ceil(lines / JOB_MAX_LINES)
    for n in range(jobs):
        sim.submit("tenant-a", min(JOB_MAX_LINES, lines - n * JOB_MAX_LINES), f"job-{n}")
    horizon = 48 * 3600.0
    full_at: float | None = None
    while len(sim.finished_at) < jobs and sim.now < horizon:
        sim.run(sim.now + 30)
        if full_at is None and sim.in_service() >= max_instances:
            full_at = sim.now
            if interactive:
                sim.interactive_until = horizon
                sim.at(sim.now, sim.interactive)
    end = max(sim.finished_at.values(), default=sim.now)
    sim.interactive_until = 0
    sim.run(end + 3 * 3600)
    zero_at = next((t for t, desired, _ in sim.capacity_log if t >= end and desired == 0), None)
    # Steady state: every instance in service, up to the last launch (the final drain is not steady).
    last_launch = end - p.launch_seconds - p.notify_seconds - p.finish_seconds - 2 * p.chunk_inputs / p.items_per_second
    window_start = full_at if full_at is not None else end
    done = sum(n for t, n in sim.done_log if window_start + 30 <= t <= last_launch)
    window = max(1e-9, last_launch - window_start - 30)
    return BulkRun(
        max_instances=max_instances,
        lines=lines,
        total_s=end,
        steady_items_per_s=done / window if window > 60 else float("nan"),
        to_zero_s=None if zero_at is None else zero_at - end,
        peak_instances=max(d for _, d, _ in sim.capacity_log),
        interactive_p99_s=_p99([s for arrived, s in sim.interactive_times if window_start <= arrived <= last_launch]),
        sim_seconds=time.process_time() - started,
    )


def idle_interactive(params: Params) -> float | None:
    """Interactive batches alone on one warm instance: the baseline for 'p99 at the endpoint'."""
    sim = Sim(replace(params, max_instances=1))
    sim.instances.append(Instance(ready_at=0.0))
    sim.capacity = 1
    sim.interactive_until = 1800
    sim.at(0, sim.interactive)
    sim.run(1800 + 60)
    return _p99([s for _, s in sim.interactive_times])


def two_tenants(params: Params, lines: int, max_instances: int) -> tuple[float, float]:
    sim = Sim(replace(params, max_instances=max_instances))
    sim.start()
    sim.submit("tenant-a", lines, "a")
    sim.submit("tenant-b", lines, "b")
    while len(sim.finished_at) < 2 and sim.now < 48 * 3600:
        sim.run(sim.now + 60)
    return sim.finished_at["a"], sim.finished_at["b"]


def _p99(values: list[float]) -> float | None:
    if len(values) < 20:
        return None
    return sorted(values)[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]


# -- the report -----------------------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f} min"


def _p99_ratio(run: BulkRun, idle_p99: float | None) -> str | None:
    return None if run.interactive_p99_s is None or not idle_p99 else f"{run.interactive_p99_s / idle_p99:.2f}x"


def report(params: Params, lines: int, baseline: Params | None) -> str:
    rate, startup = params.items_per_second, params.startup_seconds
    idle_p99 = idle_interactive(params)
    runs = [bulk_run(params, lines, n) for n in (1, 2, 4, 8)]
    out = [
        "# Capacity simulation: bulk jobs on a scaling endpoint",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python -m bench.scale` (simulated time; "
        f"{sum(r.sim_seconds for r in runs):.0f} s of CPU for the four bulk runs). The decisions are the product's "
        "code (`ChunkScheduler`, `bulk_places`, `bulk_backlog`); the endpoint, the functions' latencies and "
        "Application Auto Scaling are models with the parameters below. The endpoint starts at zero instances.",
        "",
        f"Workload: {lines:,} one-text lines as {math.ceil(lines / JOB_MAX_LINES)} job files of at most "
        f"{JOB_MAX_LINES:,} lines (a job file's limit), submitted at once by one tenant; interactive batches of "
        f"{params.interactive_inputs} texts arrive at {params.interactive_per_second}/s (Poisson) once every "
        "instance is in service.",
        "",
        "## 1. A 10-million-line workload by MaxInstanceCount",
        "",
        "| MaxInstanceCount | total (submit -> last chunk) | ideal (work / instances x rate) | ideal + one start-up "
        "| steady items/s | steady / (instances x rate) | back to zero after the last chunk | interactive p99 at "
        "the endpoint (idle " + (f"{idle_p99 * 1000:.0f} ms" if idle_p99 else "n/a") + ") |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        ideal = r.lines / (r.max_instances * rate)
        ratio = _p99_ratio(r, idle_p99)
        p99 = "n/a" if ratio is None else f"{(r.interactive_p99_s or 0) * 1000:.0f} ms ({ratio})"
        out.append(
            f"| {r.max_instances} | {_minutes(r.total_s)} ({r.total_s / ideal:.2f}x) | {_minutes(ideal)} | "
            f"{_minutes(ideal + startup)} ({r.total_s / (ideal + startup):.2f}x) | {r.steady_items_per_s:,.0f} | "
            f"{r.steady_items_per_s / (r.max_instances * rate):.2f} | {_minutes(r.to_zero_s)} | {p99} |"
        )
    eight, warm = runs[-1], bulk_run(params, lines, 8, warm=True)
    eight_ideal = eight.lines / (8 * rate)
    limit_to_zero = params.scale_in_cooldown + 15 * 60
    a, b = two_tenants(params, JOB_MAX_LINES, 4)
    checks = [
        (
            "steady throughput >= 0.85 x instances x rate, every MaxInstanceCount",
            all(r.steady_items_per_s >= 0.85 * r.max_instances * rate for r in runs),
            ", ".join(f"{r.steady_items_per_s / (r.max_instances * rate):.2f}" for r in runs),
        ),
        (
            "total within 1.3x of the ideal for 8 instances",
            eight.total_s <= 1.3 * eight_ideal,
            f"{eight.total_s / eight_ideal:.2f}x (the ideal is {_minutes(eight_ideal)}, shorter than one start-up)",
        ),
        (
            "total within 1.3x of the ideal for 8 instances plus one instance start-up",
            eight.total_s <= 1.3 * (eight_ideal + startup),
            f"{eight.total_s / (eight_ideal + startup):.2f}x",
        ),
        (
            f"back at zero within the scale-in cooldown + 15 min ({_minutes(limit_to_zero)})",
            all(r.to_zero_s is not None and r.to_zero_s <= limit_to_zero for r in runs),
            ", ".join(_minutes(r.to_zero_s) for r in runs),
        ),
        (
            "interactive p99 at the endpoint <= 2x idle",
            idle_p99 is not None
            and all(r.interactive_p99_s is not None and r.interactive_p99_s <= 2 * idle_p99 for r in runs),
            ", ".join(_p99_ratio(r, idle_p99) or "n/a" for r in runs),
        ),
        (
            "total within 1.3x of the ideal for 8 instances, with 8 already in service",
            warm.total_s <= 1.3 * eight_ideal,
            f"{_minutes(warm.total_s)}: {warm.total_s / eight_ideal:.2f}x",
        ),
        (
            "two tenants' equal jobs (1M lines each, MaxInstanceCount 4) finish within 1.2x",
            max(a, b) / min(a, b) <= 1.2,
            f"{_minutes(a)} and {_minutes(b)}: {max(a, b) / min(a, b):.3f}x",
        ),
    ]
    out += ["", "| target | | value |", "|---|---|---|", *(f"| {name} | {met(ok)} | {v} |" for name, ok, v in checks)]
    if baseline is not None:
        out += [
            "",
            "## 2. The same workload with the previous defaults",
            "",
            f"MaxConcurrentInvocationsPerInstance={baseline.per_instance}, JobMaxInFlightChunks={baseline.cap}, "
            f"SweepSchedule {baseline.sweep_seconds:.0f} s (one instance's worth of chunks whatever the instance "
            "count: the gate before this change is `min(cap, ...)` with cap 3), no bulk scaling policy modelled "
            "separately (its metric is published but the cap keeps the endpoint at one instance's chunks).",
            "",
            "| MaxInstanceCount | total | steady items/s | steady / (instances x rate) |",
            "|---:|---:|---:|---:|",
        ]
        for n in (1, 8):
            r = bulk_run(baseline, lines, n, interactive=False)
            steady = r.steady_items_per_s
            out.append(f"| {n} | {_minutes(r.total_s)} | {steady:,.0f} | {steady / (n * rate):.2f} |")
    out += ["", "## Parameters and their sources", "", "| parameter | value | source |", "|---|---:|---|"]
    out.append(SOURCES.format(p=params, startup_minutes=startup / 60))
    out += [
        "",
        "## What the model leaves out",
        "",
        "- Assembly of the result files after the last chunk (a multipart copy of the part files; minutes for "
        "millions of lines) is not in the totals.",
        "- Instance start-up is one fixed figure; SageMaker documents none. The report's start-up row is the "
        "parameter, and `--startup-minutes` reruns it with another.",
        "- DynamoDB, S3 and Lambda never throttle here; the completion function runs as many copies as there are "
        "notifications.",
        "- AWS's own policy evaluation details (its metric aggregation, the exact alarm periods it creates) are "
        "approximated as listed; the scaling arithmetic is AWS's documented formula, not product code.",
    ]
    return "\n".join(out) + "\n"


# The report's parameter table, filled from the run's Params `p`.
SOURCES = """\
| MaxConcurrentInvocationsPerInstance | {p.per_instance} | template.yaml default |
| JobMaxInFlightChunks (the gate's cap) | {p.cap} | template.yaml default |
| JobChunkMaxInputs | {p.chunk_inputs} | template.yaml default |
| BulkBacklogSecondsTarget | {p.bulk_target:.0f} s | template.yaml default |
| BacklogPerInstanceTarget | {p.backlog_target:.0f} | template.yaml default |
| SweepSchedule | {p.sweep_seconds:.0f} s | template.yaml default |
| one instance's rate | {p.items_per_second:,.0f} items/s | bench/prices.json gpu_items_per_second (ml.g5.xlarge, \
derived from published figures; not measured here) |
| instance start-up | {startup_minutes:.0f} min | assumed: SageMaker documents none; a GPU instance with a ~2 GB \
image commonly takes 5-10 min |
| model container slice | {p.slice_texts} texts | model/model_server/config.py: 128 on a GPU |
| endpoint overhead per invocation | {p.endpoint_overhead_seconds} s | assumed (queue hand-off) |
| input fetch from S3 | {p.fetch_seconds} s | assumed: one small GetObject |
| output write to S3 | 20 ms + {p.bytes_out_per_input:.0f} B/input at {p.s3_write_mb_per_second:.0f} MB/s | a \
384-float vector as JSON is about 3.6 kB; single-stream PUT throughput assumed |
| notification (SNS -> SQS -> Lambda) | {p.notify_seconds} s | assumed |
| finishing a chunk in the completion function | {p.finish_seconds} s | bench/results/jobs.md p50 on the local stack \
(2 shared cores; an upper bound) |
| launching a chunk (claim, cache lookup, chunk object, invoke) | {p.launch_seconds} s | assumed |
| DescribeEndpoint reading kept for | {p.capacity_cache_seconds:.0f} s | settings.endpoint_capacity_seconds default |
| target tracking alarms | 3 datapoints of 1 min above; 15 below 90% of the target | Application Auto Scaling user \
guide, target tracking |
| cooldowns | scale-out {p.scale_out_cooldown:.0f} s, scale-in {p.scale_in_cooldown:.0f} s, step \
{p.step_cooldown:.0f} s | template.yaml |
| metric delay | {p.metric_lag:.0f} s | assumed: a datapoint is seen about a minute after its period |"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--startup-minutes", type=float, default=6.0)
    parser.add_argument("--items-per-second", type=float)
    parser.add_argument("--no-baseline", action="store_true", help="skip the previous defaults' rows")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    prices = json.loads((REPO / "bench" / "prices.json").read_text())
    rate = args.items_per_second or float(prices["assumptions"]["gpu_items_per_second"]["value"])
    params = replace(template_params(), items_per_second=rate, startup_seconds=args.startup_minutes * 60)
    baseline = None if args.no_baseline else replace(params, per_instance=4, cap=3, sweep_seconds=300)
    publish(report(params, args.lines, baseline), args.output)


if __name__ == "__main__":
    main()
