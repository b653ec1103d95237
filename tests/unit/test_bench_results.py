"""Tests for the bench's result JSON, report rendering and ci-cache summary parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import cic, report, scale
from bench.model import (
    SCHEMA_VERSION,
    CpuSample,
    FixedCost,
    JobResult,
    RunResult,
    ScaleResult,
    Variant,
    Wave,
    from_json,
    load,
    save,
    to_json,
)
from ci_cache_index import PackageSpec


def sample() -> RunResult:
    job = JobResult("b1", 1.5, True, {"install": 1.0, "cic.seed": 0.1}, {"merged.files": 12.0})
    failed = JobResult("b2", 0.5, False, {"install": 0.5}, {}, "uv exited 2: boom")
    return RunResult(
        meta={"host": "h", "date": "2030-01-01T00:00:00+00:00", "ns": [4], "quick": True},
        waves=[
            Wave("shared", 2, True, 1, 1.5, [job, job]),
            Wave("cic-iso-link+copy", 2, False, 0, 2.5, [job, failed]),
        ],
        disk={"shared": {"job_private": 0, "shared": 17_000_000}},
        floor={"cp -al": [0.1, 0.2], "cp -a": [1.0]},
        scale=ScaleResult(cache_files=10, packages=1, cp_al=[0.5], merge=[0.1], merge_new_files=1000,
                          seed_detected=[0.4], seed_detected_scope="full", job_wall=[1.0], job_command=[0.25],
                          job_overhead=[0.75], build_s=3.0),
        big_scale=ScaleResult(cache_files=100, packages=10, job_overhead=[0.9]),
        fixed_cost=FixedCost("/v/bin/python", "subreaper", {"python": [CpuSample(0.02, 0.01)],
                                                            "steps": [CpuSample(0.2, 0.05, 2)]}),
        skipped={"G5.tar": "--net-for ''", "G4": "opt-in"},
        notes=["a note"],
    )


def test_json_round_trip(tmp_path: Path) -> None:
    run = sample()
    path = tmp_path / "results" / "r.json"
    save(run, path)
    assert load(path) == run
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == SCHEMA_VERSION == 2
    assert data["fixed_cost"]["samples"]["steps"] == [{"user": 0.2, "sys": 0.05, "processes": 2}]
    assert data["waves"][1]["jobs"][1] == {
        "job": "b2",
        "wall": 0.5,
        "ok": False,
        "phases": {"install": 0.5},
        "info": {},
        "error": "uv exited 2: boom",
    }
    assert not (tmp_path / "results" / "r.json.tmp").exists()


def test_json_without_scale_and_old_schema() -> None:
    data = to_json(RunResult())
    assert from_json(data).scale is None
    with pytest.raises(ValueError, match="schema"):
        from_json({**data, "schema": 99})


def test_results_of_schema_1_still_load() -> None:
    # What the committed runs of 2026-11-21 hold: no network, fixed cost, 10x point or skipped targets.
    old = {
        "schema": 1,
        "meta": {"host": "vm"},
        "waves": [{"variant": "shared+copy", "n": 4, "warm": True, "repeat": 1, "makespan": 1.5, "jobs": []}],
        "disk": {},
        "floor": {},
        "scale": {"cache_files": 5, "seed_full": [0.2], "merge_new_files": 10},
        "notes": [],
    }
    run = from_json(old)
    assert Variant.parse(run.waves[0].variant) == Variant("shared", "copy", "loopback")
    assert run.scale is not None and run.scale.seed_detected == [] and run.scale.job_overhead == []
    assert run.big_scale is None and run.fixed_cost is None and run.skipped == {}
    committed = Path(__file__).resolve().parents[2] / "bench" / "results" / "2026-11-21-vm-quick.json"
    assert load(committed).meta["host"] == "vm"


def test_wave_ok_follows_its_jobs() -> None:
    run = sample()
    assert run.waves[0].ok
    assert not run.waves[1].ok


def test_variant_keys() -> None:
    assert Variant("shared").key == "shared"
    assert Variant("shared", "copy").key == "shared+copy"
    assert Variant.parse("cic-iso-link+copy") == Variant("cic-iso-link", "copy")
    assert Variant.parse("zip") == Variant("zip", "default")
    assert Variant("empty", "default", "net").key == "empty@net"
    assert Variant("shared", "copy", "net").key == "shared+copy@net"
    for key in ("empty@net", "shared+copy@net", "cic-iso-link", "cp-al+copy"):
        assert Variant.parse(key).key == key
    assert Variant.parse("tar-zstd@net") == Variant("tar-zstd", "default", "net")


def test_text_and_markdown_reports_hold_the_numbers() -> None:
    run = sample()
    text = report.text(run)
    assert "shared" in text and "1.50" in text
    assert "install 1.00, cic.seed 0.10" in text
    assert "target: P1 measured=n/a bound=1.15 FAIL" in text
    md = report.markdown(run, {"shared": "one cache"})
    assert md.startswith("# Benchmark run 2030-01-01T00:00:00+00:00 on h")
    assert "| shared | - | 1.50 |" in md  # no cold wave of shared; its warm N=2 median
    assert "| shared | one cache |" in md
    assert "- a note" in md
    assert "| P5 |" in md
    # Goal 1's table: CPU in ms, the ratio to bare python, the detached processes that were counted.
    assert "| `ci-cache setup` + `ci-cache finish` | 250.0 | 200.0 | 50.0 | 8.33x | 1 | 2 |" in md
    assert "| SKIP |" in md and "- G5.tar skipped: --net-for ''" in md
    assert "target: G5.tar measured=n/a bound=8 SKIP" in text and "G5.tar skipped: --net-for ''" in text
    assert "target: G4 measured=1.200 bound=1.5 PASS" in text  # measured after all: the skip does not apply
    assert "G4 skipped" not in text
    # The 10% job on both scale points: wall / command / overhead.
    assert "scale cache (10 files): wall / uv command / overhead | 1.000 / 0.250 / 0.750 |" in md
    assert "(10% of the packages; scope full)" not in md  # keyed_fraction is 0 in this sample
    assert "scope full) | 0.400 |" in md


def test_text_table_aligns_columns() -> None:
    table = report.text_table(["a", "long header"], [["xxxxx", "1"]])
    assert table.splitlines() == ["a      long header", "-----  -----------", "xxxxx  1"]


def test_markdown_table_escapes_pipes() -> None:
    assert report.md_table(["h"], [["a|b"]]).splitlines()[-1] == "| a\\|b |"


def test_read_summary_takes_what_is_there() -> None:
    data = {
        "phases": {"seed": 0.25, "merge": {"uv": 0.5, "pip": 0.0}, "lock_wait": 0, "note": "x", "ok": True},
        "seeded": {"uv": {"files": 10, "bytes": 2048}},
        "merged": {"files": 3},
        "other": {"seed": 9},
    }
    phases, counts = cic.read_summary(data)
    assert phases == {"cic.seed": 0.25, "cic.merge.uv": 0.5, "cic.merge.pip": 0.0, "cic.lock_wait": 0.0}
    assert counts == {"seeded.uv.files": 10.0, "seeded.uv.bytes": 2048.0, "merged.files": 3.0}
    assert cic.read_summary(None) == ({}, {})
    assert cic.read_summary(["phases"]) == ({}, {})
    assert cic.read_summary({"phases": "soon"}) == ({}, {})


def test_phase_total_sums_per_tool_parts() -> None:
    assert scale.phase_total({"cic.seed": 0.3, "cic.seed.uv": 9.0}, "seed") == 0.3
    assert scale.phase_total({"cic.merge.uv": 0.5, "cic.merge.pip": 0.25}, "merge") == 0.75
    assert scale.phase_total({"cic.seeding": 1.0}, "seed") is None


def test_parse_json_output_finds_the_object() -> None:
    assert cic.parse_json_output('{"a": 1}') == {"a": 1}
    assert cic.parse_json_output('warning: x\n{"a": 2}\n') == {"a": 2}
    assert cic.parse_json_output("no json here") is None


def test_job_env_overlays_and_prepends_path() -> None:
    base = {"PATH": "/usr/bin", "KEEP": "1", "UV_CACHE_DIR": "old"}
    data = {"env": {"UV_CACHE_DIR": "/j/uv", "TMPDIR": "/j/tmp"}, "path_prepend": ["/j/bin"]}
    env = cic.job_env(base, data)
    assert env["UV_CACHE_DIR"] == "/j/uv"
    assert env["TMPDIR"] == "/j/tmp"
    assert env["KEEP"] == "1"
    assert env["PATH"] == os.pathsep.join(["/j/bin", "/usr/bin"])
    assert cic.job_env(base, {})["PATH"] == "/usr/bin"


def test_config_env_leaves_uv_link_mode_alone_by_default() -> None:
    assert cic.config_env("link", "default") == {"CI_CACHE_SEED": "link", "CI_CACHE_UV_LINK_MODE": "unset"}
    assert cic.config_env("copy", "copy")["CI_CACHE_UV_LINK_MODE"] == "copy"


def test_the_big_scale_point_holds_the_same_job_and_ten_times_the_packages() -> None:
    small = scale.ScalePlan(packages=500, repeats=3)
    big = small.big()
    assert big.packages == 5000 and big.new_packages == 0 and not big.copy_floor
    assert len(small.job_names()) == 50 and small.job_names()[:2] == ["scale-pkg-0000", "scale-pkg-0010"]
    assert set(small.job_names()) <= set(big.base_names())  # the same job fits the bigger cache
    assert {s.name for s in small.specs()} - {s.name for s in big.specs()} == {
        f"scale-new-{r}-{i}" for r in range(3) for i in range(10)
    }


def test_seed_scope_reads_what_ci_cache_said() -> None:
    assert scale.seed_scope({"seeded": {"uv": {"scope": "requirements.txt", "files": 3}}}) == "requirements.txt"
    assert scale.seed_scope({"seeded": {"uv": {"files": 3}}}) == ""
    assert scale.seed_scope({"seeded": "x"}) == ""
    assert scale.seed_scope({}) == ""


def test_an_unchanged_scale_index_is_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []

    def fake_build(root: Path, specs: list[PackageSpec]) -> Path:
        builds.append(len(specs))
        (root / "simple").mkdir(parents=True, exist_ok=True)
        return root

    monkeypatch.setattr(scale, "build_index", fake_build)
    root = tmp_path / "idx" / "20x96"
    specs = scale.ScalePlan(packages=20, repeats=1).specs()
    assert scale.ensure_index(root, specs)
    assert not scale.ensure_index(root, specs)  # same specs, same builder code: reused
    assert scale.ensure_index(root, scale.ScalePlan(packages=20, repeats=2).specs())  # specs changed
    (tmp_path / "idx" / "20x96.stamp").write_text("garbage\n")
    assert scale.ensure_index(root, scale.ScalePlan(packages=20, repeats=2).specs())  # stamp does not match
    assert builds == [30, 40, 40]
    assert scale.specs_digest(specs) != scale.specs_digest(specs[:-1])


def test_what_a_quick_run_left_out_has_no_empty_column_or_row() -> None:
    run = sample()
    run.disk = {}  # --quick: no disk probe
    assert run.scale is not None
    run.scale.cp_a = []  # --quick: no `cp -a`
    md = report.markdown(run, {})
    assert "disk MB" not in md and "cp -a of the scale cache" not in md
    assert "cp -al of the scale cache (10 files) | 0.500 |" in md
    assert "| shared | - | 1.50 | install 1.00, cic.seed 0.10 |" in md
