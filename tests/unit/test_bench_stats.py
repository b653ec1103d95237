"""Tests for bench.stats and bench.targets: medians, ratios, headline numbers and target lines."""

from __future__ import annotations

import re

import pytest

from bench import stats, targets
from bench.model import CpuSample, FixedCost, JobResult, RunResult, ScaleResult, Wave


def wave(
    variant: str, n: int, makespan: float, *, warm: bool = True, ok: bool = True, phases: dict[str, float] | None = None
) -> Wave:
    jobs = [JobResult(f"j{i}", makespan, ok, dict(phases or {})) for i in range(n)]
    return Wave(variant, n, warm, 1, makespan, jobs)


def sample_run() -> RunResult:
    """N=4 makespans chosen so every ratio is an exact, easy number."""
    waves = [
        wave("shared", 4, 1.0),
        wave("shared", 4, 3.0),
        wave("shared", 4, 2.0),  # median 2.0
        wave("shared+copy", 4, 10.0),
        wave("cic-iso-link", 4, 2.5, phases={"cic.seed": 0.2, "cic.merge": 0.1}),
        wave("cic-iso-link+copy", 4, 11.0),
        wave("empty", 4, 20.0),
        wave("tar-zstd", 4, 25.0),
        wave("zip", 4, 30.0),
        wave("shared", 1, 0.5),
        wave("shared", 4, 9.0, warm=False),  # cold: never mixed into warm medians
        wave("empty", 4, 1.0, ok=False),  # a failed wave: excluded
        wave("cp-al", 4, 2.0),
        wave("empty@net", 4, 21.0),
        wave("tar-zstd@net", 4, 30.0),
        wave("cic-iso-link@net", 4, 3.0),
    ]
    scale = ScaleResult(
        cache_files=52000,
        packages=500,
        cp_al=[2.0, 2.0, 2.0],
        seed_full=[1.0, 1.5, 2.0],
        seed_keyed=[0.3],
        keyed_fraction=0.1,
        merge=[0.4, 0.5, 0.6],
        merge_new_files=500,
        seed_detected=[0.2, 0.1, 0.3],
        job_overhead=[0.5, 0.4, 0.6],
    )
    big = ScaleResult(cache_files=520000, packages=5000, job_overhead=[0.7, 0.8, 0.9])
    cpu = {
        "python": [CpuSample(0.02, 0.01), CpuSample(0.03, 0.01), CpuSample(0.01, 0.01)],  # median 0.03
        "run": [CpuSample(0.06, 0.03, 1)],
        "steps": [CpuSample(0.15, 0.03, 2)],
    }
    fixed = FixedCost("/v/bin/python", "subreaper", cpu)
    return RunResult(meta={"host": "h"}, waves=waves, scale=scale, big_scale=big, fixed_cost=fixed)


def test_median_and_ratio_edge_cases() -> None:
    assert stats.median([]) is None
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([1.0, 2.0]) == 1.5
    assert stats.ratio(None, 1.0) is None
    assert stats.ratio(1.0, None) is None
    assert stats.ratio(1.0, 0.0) is None
    assert stats.ratio(3.0, 2.0) == 1.5


def test_makespan_is_the_median_of_ok_warm_waves_only() -> None:
    run = sample_run()
    assert stats.makespan(run, "shared", 4) == 2.0
    assert stats.makespan(run, "shared", 4, warm=False) == 9.0
    assert stats.makespan(run, "empty", 4) == 20.0  # the failed 1.0 s wave is not counted
    assert stats.makespan(run, "shared", 8) is None


def test_phase_medians_and_names() -> None:
    run = sample_run()
    assert stats.phase(run, "cic-iso-link", 4, "cic.seed") == pytest.approx(0.2)
    assert stats.phase(run, "shared", 4, "cic.seed") is None
    assert stats.phase_names(run, "cic-iso-link") == ["cic.seed", "cic.merge"]


def test_variants_keep_first_run_order_and_ns_are_sorted() -> None:
    run = sample_run()
    assert stats.variants(run)[:3] == ["shared", "shared+copy", "cic-iso-link"]
    assert stats.ns(run) == [1, 4]


def test_merge_per_1000_scales_to_1000_files() -> None:
    run = sample_run()
    assert stats.merge_per_1000(run) == pytest.approx(1.0)  # 0.5 s for 500 files
    run.scale = ScaleResult(merge=[0.5], merge_new_files=0)
    assert stats.merge_per_1000(run) is None
    run.scale = None
    assert stats.merge_per_1000(run) is None


def test_network_variant_names_and_cpu_medians() -> None:
    assert stats.net("empty") == "empty@net"
    assert stats.net("shared+copy") == "shared+copy@net"
    run = sample_run()
    assert stats.cpu(run, "python") == pytest.approx(0.03)
    assert stats.cpu_part(run, "python", "sys") == pytest.approx(0.01)
    assert stats.cpu(run, "nope") is None
    assert stats.cpu(RunResult(), "python") is None
    assert stats.overhead(run.big_scale) == pytest.approx(0.8)
    assert stats.overhead(None) is None


def test_headlines() -> None:
    values = {h.name: h.value for h in stats.headlines(sample_run())}
    assert values["ci-cache isolated / plain shared, default link mode (N=4)"] == pytest.approx(1.25)
    assert values["ci-cache isolated / plain shared, UV_LINK_MODE=copy (N=4)"] == pytest.approx(1.1)
    assert values["per-job empty cache / ci-cache isolated (N=4)"] == pytest.approx(8.0)
    assert values["tar.zst restore+save / ci-cache isolated (N=4)"] == pytest.approx(10.0)
    assert values["zip restore+save / ci-cache isolated (N=4)"] == pytest.approx(12.0)
    assert values["full seed / cp -al of the same cache (scale set)"] == pytest.approx(0.75)
    assert values["keyed seed / full seed (scale set)"] == pytest.approx(0.2)
    assert values["merge time per 1,000 new files (scale set)"] == pytest.approx(1.0)
    assert values["ci-cache run -- true / bare python, CPU"] == pytest.approx(3.0)
    assert values["network: per-job empty cache / ci-cache isolated (N=4)"] == pytest.approx(7.0)
    assert values["network: ci-cache isolated / plain shared (N=4)"] is None  # no shared@net in this run
    assert values["per-job overhead of the 10% job, 10x cache / scale set"] == pytest.approx(1.6)


def test_targets_measured_values_and_verdicts() -> None:
    by_id = {t.id: t for t in targets.compute(sample_run())}
    assert list(by_id) == [
        "P1", "P1.bar", "P1.default", "P2", "P2.bar", "P3", "P3.bar", "P4a", "P4b", "P5",
        "G1.run", "G1.steps", "G2", "G3.default", "G3.copy", "G3.cpal", "G4", "G5.empty", "G5.tar",
    ]
    expected = {
        "P1": (1.1, True),  # 11 / 10 <= 1.15
        "P1.bar": (1.1, True),  # equal to the bar passes
        "P1.default": (1.25, True),
        "P2": (8.0, True),
        "P2.bar": (8.0, True),
        "P3": (10.0, True),
        "P3.bar": (10.0, True),
        "P4a": (0.75, True),
        "P4b": (0.2, True),
        "P5": (1.0, True),
        "G1.run": (3.0, True),  # 0.09 / 0.03: at the bound
        "G1.steps": (6.0, True),  # 0.18 / 0.03: twice the run bound
        "G2": (0.2 / 1.5, True),
        "G3.default": (1.25, True),
        "G3.copy": (1.1, True),
        "G3.cpal": (1.25, False),  # 2.5 / 2.0: slower than the one-liner
        "G4": (1.6, False),  # 0.8 / 0.5 > 1.5
        "G5.empty": (7.0, True),  # 21 / 3, behind the network profile (not the loopback 20 / 2.5)
        "G5.tar": (10.0, True),
    }
    for tid, (measured, passed) in expected.items():
        assert by_id[tid].measured == pytest.approx(measured), tid
        assert by_id[tid].passed is passed, tid


def test_targets_fail_in_the_right_direction() -> None:
    run = sample_run()
    run.waves.append(wave("cic-iso-link", 4, 9.0))
    run.waves.append(wave("cic-iso-link", 4, 9.0))  # median now 9.0 s
    by_id = {t.id: t for t in targets.compute(run)}
    assert by_id["P1.default"].measured == pytest.approx(4.5)
    assert not by_id["P1.default"].passed  # at most 1.5
    assert by_id["P2"].measured == pytest.approx(20 / 9)
    assert not by_id["P2"].passed  # at least 3


def test_target_lines_have_the_agreed_shape() -> None:
    run = sample_run()
    run.scale = None
    lines = targets.lines(targets.compute(run))
    shape = re.compile(r"^target: [A-Za-z0-9.]+ measured=(n/a|\d+\.\d{3}) bound=[\d.]+ (PASS|FAIL|SKIP)$")
    assert all(shape.match(line) for line in lines), lines
    assert "target: P1 measured=1.100 bound=1.15 PASS" in lines
    assert "target: P4a measured=n/a bound=1 FAIL" in lines  # not measured is never a pass
    assert "target: G4 measured=n/a bound=1.5 FAIL" in lines  # nor is a measurement that went missing
    run.skipped["G4"] = "the 10x point is opt-in"
    by_id = {t.id: t for t in targets.compute(run)}
    assert by_id["G4"].line() == "target: G4 measured=n/a bound=1.5 SKIP"  # left out on purpose
    assert not by_id["G4"].passed and by_id["G4"].skipped == "the 10x point is opt-in"
    run.scale = sample_run().scale
    run.big_scale = sample_run().big_scale
    assert {t.id: t for t in targets.compute(run)}["G4"].verdict == "FAIL"  # a measured value wins over a skip


def test_strict_targets_and_conditions() -> None:
    faster = targets.Target("G3.cpal", 1.0, 1.0, True, "faster than", strict=True)
    assert not faster.passed and faster.condition == "< 1"
    assert targets.Target("x", 0.999, 1.0, True, "", strict=True).passed
    assert targets.Target("x", 6.0, 6.0, False, "").condition == ">= 6"
    assert targets.Target("x", 6.0, 6.0, False, "").passed
    assert not targets.Target("x", 6.0, 6.0, False, "", strict=True).passed
    assert targets.G1_STEPS_BOUND == 2 * targets.G1_RUN_BOUND


def test_target_computation_ignores_other_ns() -> None:
    run = RunResult(waves=[wave("shared", 8, 1.0), wave("cic-iso-link", 8, 1.0)])
    by_id = {t.id: t for t in targets.compute(run)}
    assert by_id["P1.default"].measured is None
    assert {t.id: t for t in targets.compute(run, n=8)}["P1.default"].measured == pytest.approx(1.0)


def test_a_target_whose_variants_the_run_left_out_is_skipped() -> None:
    run = sample_run()
    run.meta["variants"] = ["shared", "cic-iso-link", "empty", "tar-zstd"]  # no cp-al, no copy mode, no @net
    run.waves = [w for w in run.waves if w.variant in run.meta["variants"]]
    by_id = {t.id: t for t in targets.compute(run)}
    assert by_id["G3.cpal"].verdict == "SKIP" and by_id["G3.cpal"].skipped == "this run left out cp-al"
    assert by_id["G3.copy"].skipped == "this run left out cic-iso-link+copy, shared+copy"
    assert by_id["G5.tar"].skipped == "this run left out tar-zstd@net, cic-iso-link@net"
    assert by_id["G3.default"].verdict == "PASS"  # its variants ran
    run.waves = [w for w in run.waves if w.variant != "empty"]  # planned, but no wave succeeded
    assert {t.id: t for t in targets.compute(run)}["P2"].verdict == "FAIL"
