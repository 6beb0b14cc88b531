"""Pipeline benchmark on the local stack: batched dispatch vs batching off, burst and steady load.

    python -m bench.pipeline [--burst 1000] [--rate 25] [--seconds 10]

Each configuration runs in its own process with its own local stack. AWS requests are counted exactly with a
botocore hook on the clients the product's code uses (API, dispatcher, completion), not the harness's own.
Writes bench/results/pipeline.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    Meter,
    api_client,
    children,
    count_requests,
    local_stack,
    percentile,
    publish,
    table,
    wait_records,
)

CONFIGS = {
    # name: (template parameter overrides, batching window override)
    "batched": ({}, None),
    "batching off": ({"DispatchBatchSize": "1", "DispatchBatchingWindowSeconds": "0"}, 0.0),
}
COST = "AWS requests per prediction"


def run_workload(api: httpx.Client, ddb: Any, table_name: str, submit_times: list[float]) -> dict[str, Any]:
    """Submit at the given offsets (seconds from now), then wait until every prediction is finished."""
    start = time.monotonic()
    ids: list[str] = []
    lock = threading.Lock()

    def submit(offset: float) -> None:
        time.sleep(max(start + offset - time.monotonic(), 0))
        response = api.post("/v1/predictions", json={"inputs": f"benchmark sentence number {offset:.4f}"})
        response.raise_for_status()
        with lock:
            ids.append(response.json()["id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(submit, submit_times))
    done = wait_records(ddb, table_name, ids, timeout=600, poll=0.25)
    at = datetime.fromisoformat
    latencies = [
        (at(r["completed_at"]) - at(r["created_at"])).total_seconds()
        for r in done.values()
        if r["status"] == "succeeded"
    ]
    first = min(at(r["created_at"]) for r in done.values())
    last = max(at(r["completed_at"]) for r in done.values())
    return {
        "submitted": len(ids),
        "succeeded": len(latencies),
        "unfinished": len(ids) - len(done),
        "throughput": len(latencies) / max((last - first).total_seconds(), 1e-9),
        **{f"p{q}": percentile(latencies, q) for q in (50, 95, 99)},
    }


def run_config(name: str, burst: int, rate: float, seconds: float) -> dict[str, Any]:
    """Runs inside a child process: one local stack, both workloads, exact AWS request counts."""
    parameters, window = CONFIGS[name]
    with local_stack(parameters=parameters, batching_window=window, pollers_per_function=5) as stack:
        meter = count_requests(Meter())
        ddb, table_name = stack.client("dynamodb"), stack.stack.table_name if stack.stack else ""
        stats = stack.urls["sagemaker"] + "/_local/stats"
        results: dict[str, Any] = {}
        with api_client(stack) as api:
            api.post("/v1/predictions", json={"inputs": "warm-up"}, headers={"Prefer": "wait=20"})
            for workload, times in (
                ("burst", [0.0] * burst),
                ("steady", [i / rate for i in range(int(rate * seconds))]),
            ):
                invocations_before = httpx.get(stats).json()["invocations"]
                meter.phase = workload
                outcome = run_workload(api, ddb, table_name, times)
                time.sleep(1)  # let the last completion calls land before we stop counting
                meter.phase = None
                outcome["invocations"] = httpx.get(stats).json()["invocations"] - invocations_before
                # "service Operation", as the report has always named them
                outcome["requests"] = {op.replace(".", " ", 1): n for op, n in meter.requests(workload).items()}
                results[workload] = outcome
        return results


def render(results: dict[str, dict[str, Any]], burst: int, rate: float, seconds: float) -> str:
    base, batched = results["batching off"], results["batched"]
    names, workloads = ("batched", "batching off"), ("burst", "steady")
    times: list[list[str]] = []
    costs: list[list[str]] = []
    for workload in workloads:
        for name in names:
            r = results[name][workload]
            n, calls = r["submitted"], r["invocations"]
            percentiles = [f"{r[p]:.2f}" for p in ("p50", "p95", "p99")]
            times.append([workload, name, f"{r['succeeded']}/{n}", f"{r['throughput']:.1f}", *percentiles])
            per = [f"{1000 * calls / n:.1f}", f"{n / max(calls, 1):.1f}", f"{sum(r['requests'].values()) / n:.2f}"]
            costs.append([workload, name, *per])
        b, o = batched[workload], base[workload]
        ratios = [f"{b[key] / o[key]:.2f}x" for key in ("throughput", "p50", "p95", "p99")]
        times.append([workload, "**ratio batched/off**", "", *ratios])
    operations = sorted(set(batched["burst"]["requests"]) | set(base["burst"]["requests"]))
    per_operation = [
        [op] + [f"{results[n]['burst']['requests'].get(op, 0) / results[n]['burst']['submitted']:.3f}" for n in names]
        for op in operations
    ]
    return "\n".join(
        [
            "# Pipeline benchmark (local stack, CPU model server)",
            "",
            f"Workloads: a burst of {burst} single-text predictions submitted by 16 clients at once, and a steady "
            f"{rate:g}/s for {seconds:g}s. Batched = the template's dispatcher settings; baseline = batch size 1, no "
            "batching window. Latency is submit (created_at) to succeeded (completed_at), from the status records.",
            "",
            "## Times and throughput (machine-dependent: compare the columns of one run)",
            "",
            table(
                ["workload", "config", "succeeded", "throughput (pred/s)", "p50 s", "p95 s", "p99 s"], times, "llrrrrr"
            ),
            "",
            "## Cost of the design (stable: exact counts, independent of the machine)",
            "",
            table(
                ["workload", "config", "endpoint invocations per 1,000 predictions", "mean batch size", COST],
                costs,
                "llrrr",
            ),
            "",
            "## AWS requests per prediction, by service and operation (burst)",
            "",
            table(["service operation", *names], per_operation, "lrr"),
            "",
            "Batch sizes depend on arrival timing, so the steady-rate counts move a little with load; the "
            "per-prediction operations (PutItem, SendMessage, UpdateItem) do not. GetItem is the completion's batch "
            "lookup: API-key lookups are cached for 30 s per warm API instance and barely appear.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=Path("bench/results/pipeline.md"))
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.result_file.write_text(json.dumps(run_config(args.child, args.burst, args.rate, args.seconds)))
        return 0
    options = ["--burst", str(args.burst), "--rate", str(args.rate), "--seconds", str(args.seconds)]
    results = children("bench.pipeline", CONFIGS, options, quiet=True)
    publish(render(results, args.burst, args.rate, args.seconds), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
