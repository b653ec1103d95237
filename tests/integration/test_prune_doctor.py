"""prune to a size bound on real uv caches, verify's repairs, doctor on a fresh root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import fsops, jobdirs, verify
from ci_cache.providers import job_key
from ci_cache.store import Store
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, build_index, scale_specs
from tests.integration.uvjobs import UV, Lab, offline_install

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

OLD = [s.name for s in scale_specs(20, 30)[:15]]
RECENT = [s.name for s in scale_specs(20, 30)[15:]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    with IndexServer(build_index(tmp_path_factory.mktemp("index"), scale_specs(20, 30, size=4096))) as srv:
        yield srv


def test_prune_keeps_the_cache_under_the_bound_and_valid(lab: Lab) -> None:
    assert lab.start_job("old", OLD, "--mode", "isolated").wait(timeout=600) == 0
    assert lab.start_job("recent", RECENT, "--mode", "isolated").wait(timeout=600) == 0
    for archive in (lab.shared_uv / "archive-v0").iterdir():
        os.utime(archive, (1_000_000, 1_000_000))
    # A job that names what it needs (key files) refreshes those entries' last use when seeded.
    (lab.tmp / "requirements.txt").write_text("\n".join(RECENT) + "\n")
    reuse = lab.start_job("reuse", RECENT, "--mode", "isolated", env=lab.env(CI_CACHE_KEY_FILES="requirements.txt"))
    assert reuse.wait(timeout=600) == 0
    _, size = fsops.tree_size(lab.shared_uv)
    bound = size // 3
    proc = lab.cli("prune", "--max-size", str(bound), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)[0]
    assert report["evicted_entries"] > 0
    assert fsops.tree_size(lab.shared_uv)[1] <= bound
    check = verify.check(UvTool(), lab.shared_uv)
    assert check.ok, verify.render(check)
    # The least recently used went first: what jobs used last still installs offline.
    offline = offline_install(lab, RECENT[-2:], lab.shared_uv)
    assert offline.returncode == 0, offline.stderr


def test_prune_by_age_evicts_everything_old(lab: Lab) -> None:
    assert lab.start_job("old", OLD[:4], "--mode", "isolated").wait(timeout=600) == 0
    for archive in (lab.shared_uv / "archive-v0").iterdir():
        os.utime(archive, (1_000_000, 1_000_000))
    proc = lab.cli("prune", "--max-age", "30d")
    assert proc.returncode == 0, proc.stderr
    assert [p for p in (lab.shared_uv / "archive-v0").iterdir() if not p.name.startswith(".tmp")] == []
    assert verify.check(UvTool(), lab.shared_uv).ok


def test_verify_finds_and_fixes_only_what_is_broken(lab: Lab) -> None:
    assert lab.start_job("a", OLD[:3], "--mode", "isolated").wait(timeout=600) == 0
    assert lab.cli("verify").returncode == 0
    archives = sorted((lab.shared_uv / "archive-v0").iterdir())
    fsops.rmtree(archives[0])  # a pointer now dangles
    leftover = lab.shared_uv / "archive-v0" / ".tmp-cicache-123-deadbeef"
    leftover.mkdir()
    broken = lab.cli("verify", "--json")
    assert broken.returncode == 5
    findings = json.loads(broken.stdout)["findings"]
    assert {f["kind"] for f in findings} == {"error", "garbage"}
    fixed = lab.cli("verify", "--fix")
    assert fixed.returncode == 0, fixed.stderr
    assert not leftover.exists()
    assert sorted((lab.shared_uv / "archive-v0").iterdir()) == archives[1:]
    # What was valid still installs; the broken package is re-downloaded by the next job, not failed.
    assert lab.start_job("b", OLD[:3], "--mode", "isolated").wait(timeout=600) == 0
    assert offline_install(lab, OLD[:3], lab.shared_uv).returncode == 0


def test_doctor_explains_a_fresh_root_and_a_stale_job(lab: Lab) -> None:
    fresh = lab.cli("doctor")
    assert fresh.returncode == 0, fresh.stderr
    for check in ("root", "disk", "paths", "uv", "locks", "jobs"):
        assert f"[ok] {check}:" in fresh.stdout  # the report is the command's output: `doctor | grep` finds it
    env = lab.env(CI_CACHE_JOB="abandoned")
    assert lab.cli("setup", "--mode", "isolated", "--format", "json", env=env).returncode == 0
    record = jobdirs.current_record(Store(lab.root), job_key("abandoned"))
    assert record is not None
    os.kill(record["holder_pid"], 9)
    sick = lab.cli("doctor")
    assert sick.returncode == 5
    assert "[PROBLEM] jobs:" in sick.stdout and "ci-cache gc" in sick.stdout


def test_doctor_on_an_unwritable_root(lab: Lab, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    proc = lab.cli("doctor", "--root", str(blocker / "root"))
    assert proc.returncode == 5
    assert "[PROBLEM] root:" in proc.stdout and "writable folder" in proc.stdout
    assert proc.stderr == "ci-cache: error: doctor found problems (see the advice above)\n"


def test_prune_on_finish_bounds_the_cache_after_a_merge(lab: Lab) -> None:
    (lab.tmp / "ci-cache.yml").write_text("prune:\n  max_size: 200KB\n  on_finish: true\n")
    assert lab.start_job("big", OLD, "--mode", "isolated").wait(timeout=600) == 0
    summary = lab.summary("big")
    assert "prune" in summary["phases"]
    assert fsops.tree_size(lab.shared_uv)[1] <= 200_000
    assert verify.check(UvTool(), lab.shared_uv).ok
