"""Tests for the bench's result JSON, report rendering and ci-cache summary parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import cic, report, scale
from bench.model import JobResult, RunResult, ScaleResult, Variant, Wave, from_json, load, save, to_json


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
        scale=ScaleResult(cache_files=10, packages=1, cp_al=[0.5], merge=[0.1], merge_new_files=1000),
        notes=["a note"],
    )


def test_json_round_trip(tmp_path: Path) -> None:
    run = sample()
    path = tmp_path / "results" / "r.json"
    save(run, path)
    assert load(path) == run
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 1
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


def test_wave_ok_follows_its_jobs() -> None:
    run = sample()
    assert run.waves[0].ok
    assert not run.waves[1].ok


def test_variant_keys() -> None:
    assert Variant("shared").key == "shared"
    assert Variant("shared", "copy").key == "shared+copy"
    assert Variant.parse("cic-iso-link+copy") == Variant("cic-iso-link", "copy")
    assert Variant.parse("zip") == Variant("zip", "default")


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
