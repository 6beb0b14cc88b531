"""Fair dispatch on the local stack: tenant A enqueues a burst of predictions at once, tenant B then sends single-text
`Prefer: wait` requests; B's latency against B alone, with the backlog lane and without it.

    python -m bench.tenants [--burst 5000] [--samples 50] [--concurrency 5]

A local stack per mode (moto, the real model server, the local SageMaker endpoint, the event pumps, the API), the
modes in turn, B alone measured right before A's burst:

- "one lane": A's interactive share set past its burst (`set-limits --interactive-inputs-per-minute`), so all of
  A's predictions wait in the request queue ahead of B, first come, first served: how the product dispatched
  before the backlog lane;
- "backlog lane": past its interactive share A's predictions wait in the backlog lane, whose consumer
  (BacklogLaneConcurrency dispatchers, BacklogDispatchBatchSize messages each) marks its batches as bulk and holds
  each place at the endpoint until its batch is done. The share is the template's TenantInteractiveInputsPerMinute
  scaled to this machine: 600 a minute is 0.33% of one GPU instance (EndpointItemsPerSecond, 3,000 a second); the
  CPU model server here does about 21 a second, so the same fraction is about 4 a minute (`SCALED_SHARE`).
  Unscaled, the ~5 minutes the local API needs to accept A's burst would let ~3,000 of it into the interactive
  lane, where a deployed API accepts it in seconds;
- "backlog lane, batches of 50": the same with BacklogDispatchBatchSize=50, so each of A's backlog batches costs the
  emulator a quarter of the requests at a time (BacklogLaneConcurrency cannot go below Lambda's least, 2).

A sends `--burst` single-text POSTs from 32 threads; B starts as soon as the last one is accepted, `--concurrency`
requests at a time. The queue depths are read (uncounted) when B starts; A's drain runs from its first record's
`created_at` to its last `completed_at`. Writes bench/results/tenants.md and prints it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import REPO, api_client, cpu_model, describe, local_stack, log, publish, table, wait_records
from bench.jobs import interactive, predict
from local_stack.runner import LocalStack

ALL_INTERACTIVE = 1_000_000_000  # an interactive share no burst reaches
SCALED_SHARE = 5  # TenantInteractiveInputsPerMinute's fraction of a GPU instance, applied to this CPU's throughput
# mode: (tenant A's interactive share a minute, template parameter overrides)
MODES: dict[str, tuple[int, dict[str, str]]] = {
    "one lane": (ALL_INTERACTIVE, {}),
    "backlog lane": (SCALED_SHARE, {}),
    "backlog lane, batches of 50": (SCALED_SHARE, {"BacklogDispatchBatchSize": "50"}),
}
TARGET_MODE = "backlog lane"  # the template's defaults
# The template's SweepSchedule, not the local stack's 10 s: the sweeper's index queries are O(table) in moto and
# hold its DynamoDB for tenths of a second each with A's records in the table, which DynamoDB does not.
SWEEP_SECONDS = 60.0
LATENCY_TARGET = 1.5
WHEN = (("alone", "alone"), ("behind A", "behind"))
BURST_THREADS = 32
BURST_ATTEMPTS = 3
PARAMETERS = (
    "TenantInteractiveInputsPerMinute",
    "BacklogLaneConcurrency",
    "BacklogDispatchBatchSize",
    "DispatchBatchSize",
    "DispatcherMaxConcurrency",
    "MaxConcurrentInvocationsPerInstance",
)


def burst(api: httpx.Client, count: int, tenant: str) -> list[str]:
    def submit(n: int) -> str:
        # Sent again on a broken connection: under this burst a connection to the in-process API has been seen to
        # break mid-request (EBADF here, ClientDisconnect there). No Idempotency-Key, which would add a write to
        # every request: a request that broke after its record was written leaves one extra prediction of A's.
        body = {"inputs": f"{tenant} backlog sentence number {n}"}
        for attempt in range(BURST_ATTEMPTS):
            try:
                response = api.post("/v1/predictions", json=body)
                break
            except httpx.TransportError:
                if attempt + 1 == BURST_ATTEMPTS:
                    raise
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=BURST_THREADS) as pool:
        return list(pool.map(submit, range(count)))


def drained(table: tuple[Any, str], ids: list[str], timeout: float = 1800) -> dict[str, Any]:
    done = wait_records(table[0], table[1], ids, timeout, poll=0.5)
    first = min(datetime.fromisoformat(r["created_at"]) for r in done.values())
    last = max(datetime.fromisoformat(r["completed_at"]) for r in done.values())
    return {
        "succeeded": sum(r["status"] == "succeeded" for r in done.values()),
        "unfinished": len(ids) - len(done),
        "seconds": (last - first).total_seconds(),
    }


def depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = [f"tenant b asks question number {n} of the run" for n in range(len(MODES) * (2 * args.samples + 1))]
    results: dict[str, Any] = {}
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for mode, (share, overrides) in MODES.items():
        # A stack per mode: the modes differ in template parameters, and none inherits another's leftovers.
        options = {"pollers_per_function": 5, "schedule_interval": SWEEP_SECONDS, "parameters": overrides}
        with local_stack(**options) as stack:
            results[mode] = run_mode(stack, mode, share, texts, args)
    return results


def run_mode(stack: LocalStack, mode: str, share: int, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from inference_core.logic import limits
    from inference_core.logic.auth import create_api_key

    assert stack.stack is not None
    env = stack.stack.env
    parameters = {name: stack.stack.resolver.resolve({"Ref": name}) for name in PARAMETERS}
    sqs, ddb = stack.client("sqs"), stack.client("dynamodb")
    table = (ddb, stack.stack.table_name)
    queues = {"request queue": env["REQUEST_QUEUE_URL"], "backlog queue": env["BACKLOG_QUEUE_URL"]}
    key_b, _ = create_api_key("bench-tenant-b", "bench.tenants")
    tenant_a = "bench-tenant-a"
    limits.set_limits(tenant_a, {"interactive_inputs_per_minute": share})
    key_a, _ = create_api_key(tenant_a, "bench.tenants")
    with api_client(stack, key_b) as b, api_client(stack, key_a) as a:
        predict(b, texts.pop())  # warm-up
        log(f"{mode}: B alone ...")
        alone = interactive(b, [texts.pop() for _ in range(args.samples)], args.concurrency)
        log(f"{mode}: A's burst of {args.burst} ...")
        # "At once": the API here takes A's burst far slower than a deployed one (one process, moto), so the
        # dispatcher's event sources are off until the last of it is accepted; it is all queued when B starts, as
        # it would be a second after a real burst.
        with stack.event_sources_disabled("DispatcherFunction"):
            started = time.monotonic()
            ids = burst(a, args.burst, tenant_a)
            burst_seconds = time.monotonic() - started
            depths = {name: depth(sqs, url) for name, url in queues.items()}
        log(f"{mode}: B behind A (queued: {depths}) ...")
        behind = interactive(b, [texts.pop() for _ in range(args.samples)], args.concurrency)
        log(f"{mode}: until A's burst is done ...")
        return {
            "parameters": parameters,
            "alone": alone,
            "behind": behind,
            "burst_seconds": burst_seconds,
            "depths": depths,
            "a": drained(table, ids),
        }


def _row(name: str, figures: dict[str, Any]) -> list[Any]:
    return [name, *(f"{figures[k]:.2f}" for k in ("p50", "p99", "queue_p50", "inference_p50")), figures["waited_out"]]


def render(results: dict[str, Any], args: argparse.Namespace, wall: float) -> str:
    lines = [
        "# Fair dispatch: tenant B's interactive predictions behind tenant A's burst",
        "",
        f"`make bench-tenants` (`python -m bench.tenants --burst {args.burst} --samples {args.samples} "
        f"--concurrency {args.concurrency}`), {describe('new', REPO, 'HEAD')}; {cpu_model()}, "
        f"{wall / 60:.1f} min in all. Template parameters in effect (the defaults, but for each mode's overrides): "
        + ", ".join(f"{k}={v}" for k, v in results[TARGET_MODE]["parameters"].items())
        + f"; tenant A's interactive share in the backlog-lane modes {SCALED_SHARE} a minute (the template's share "
        "scaled from a GPU instance's throughput to this CPU's: see bench/tenants.py). Each mode runs on a stack "
        "of its own.",
        "",
        f"Tenant A sends {args.burst} single-text predictions ({BURST_THREADS} threads); as soon as the last is "
        f"accepted tenant B sends {args.samples} single-text `Prefer: wait=20` predictions, {args.concurrency} at a "
        "time. B alone is measured right before each mode, on the same stack. Seconds; queue = created -> running, "
        "inference = running -> succeeded (the record's metrics).",
        "",
        table(
            ["B's predictions", "p50", "p99", "queue p50", "inference p50", "past the wait"],
            [_row(f"{mode}: B {when}", results[mode][key]) for mode in MODES for when, key in WHEN],
            "llllll",
        ),
        "",
    ]
    rows = []
    for mode in MODES:
        figures = results[mode]
        ratio = figures["behind"]["p50"] / figures["alone"]["p50"]
        met = "met" if ratio <= LATENCY_TARGET else "not met"
        overrides = MODES[mode][1]
        if mode == TARGET_MODE:
            target = f"<= {LATENCY_TARGET}x: {met}"
        elif overrides:
            target = ", ".join(f"{k}={v}" for k, v in overrides.items()) + f" (<= {LATENCY_TARGET}x: {met})"
        else:
            target = "(the behaviour before the backlog lane)"
        queued = ", ".join(f"{name} {count}" for name, count in figures["depths"].items())
        a = figures["a"]
        burst = f"{figures['burst_seconds']:.1f} s"
        rows.append(
            [mode, f"{ratio:.2f}x", target, queued, burst, f"{a['seconds']:.1f} s", f"{a['succeeded']} of {args.burst}"]
        )
    header = ["mode", "B behind A / B alone (p50)", "target", "A queued when B started", "A's burst sent in"]
    lines += [
        table([*header, "A's drain (first created -> last completed)", "A succeeded"], rows, "lllllll"),
        "",
        "Why: SQS and the endpoint's own queue are first come, first served, so in one lane B's batches wait behind "
        "every batch of A's that was queued first. With the backlog lane, A's predictions past its interactive "
        "share go to a queue whose few consumers each keep one batch at the endpoint until it is done (marked bulk: "
        "the container runs interactive batches first), so B's batches find the endpoint's queue short. The price "
        "is A's drain: its backlog goes through a bounded number of places. Volume belongs in `/v1/jobs`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--burst", type=int, default=5000, help="tenant A's predictions, sent at once")
    parser.add_argument("--samples", type=int, default=50, help="tenant B's predictions per measurement")
    parser.add_argument("--concurrency", type=int, default=5, help="tenant B's requests at a time")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/tenants.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(args)
    publish(render(results, args, time.monotonic() - started), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
