"""The capacity simulation (bench/scale.py) runs the product's scheduler and gate; these pin what it shows on a
small workload, so a change to either that loses throughput or fairness is seen here, not only in the report."""

from __future__ import annotations

from dataclasses import replace

from bench.scale import Sim, bulk_run, template_params, two_tenants
from inference_core.domain.capacity import bulk_places


def test_a_job_scales_out_keeps_every_instance_busy_and_goes_back_to_zero() -> None:
    params = template_params()
    run = bulk_run(params, lines=3_000_000, max_instances=2)  # 1,000 s of one instance: more than 2 targets

    assert run.peak_instances == 2
    assert run.steady_items_per_s >= 0.85 * 2 * params.items_per_second
    assert run.to_zero_s is not None
    assert run.to_zero_s <= params.scale_in_cooldown + 15 * 60


def test_the_gate_never_lets_more_chunks_out_than_the_instances_read_allow() -> None:
    params = replace(template_params(), max_instances=4)
    sim = Sim(params)
    peaks: list[tuple[int, int]] = []
    settle = sim.settle

    def watched() -> None:
        settle()
        peaks.append((sim.gate, bulk_places(sim.reading[0], params.per_instance, params.cap)))

    sim.settle = watched  # type: ignore[method-assign]
    sim.at(0, sim.sample)
    sim.at(60, sim.scale)
    sim.at(params.sweep_seconds, sim.sweep)
    sim.submit("tenant-a", 1_000_000, "job")
    sim.run(3 * 3600)

    assert sim.finished_at  # it finished
    assert all(gate <= places for gate, places in peaks)
    assert max(gate for gate, _ in peaks) > params.per_instance  # more than one instance's worth at once


def test_two_tenants_equal_jobs_finish_together() -> None:
    a, b = two_tenants(template_params(), lines=1_000_000, max_instances=2)

    assert max(a, b) / min(a, b) <= 1.2
