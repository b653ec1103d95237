"""Baseline: the user reports reproduce under Wine with plain uv.exe jobs on one shared cache.

N jobs share one uv cache (a Windows path); even jobs keep .pyd modules loaded while odd jobs run
`uv pip install --reinstall` (see scenario.py). With uv's default link mode on Windows (hardlinks)
the venvs share file objects with each other, so reinstalls fail with os error 5 or 32; with
UV_LINK_MODE=copy they do not. The second run is the control that shows the scenario itself is sound,
so that "0 failures" means something when phase 2 wraps every job in `ci-cache run`.

CI_CACHE_WINE_SOAK=1 repeats the hold + reinstall phase 10 times (CI_CACHE_WINE_SOAK=N: N times).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_cache_index import IndexServer

from .scenario import ScenarioConfig, ScenarioResult, run_scenario
from .winlab import SOAK_ROUNDS, Lab

pytestmark = pytest.mark.windows

CONFIG = ScenarioConfig(jobs=8, rounds=SOAK_ROUNDS or 1)
# What the reports show (Wine words os error 32 as "Sharing violation").
REPORTED = {"access-denied", "sharing-violation"}


def _run(wine_lab: Lab, wheel_index: IndexServer, tmp_path: Path, link_mode: str | None) -> ScenarioResult:
    cache = tmp_path / "shared-uv-cache"
    env: dict[str, str | Path] = {"UV_CACHE_DIR": cache}
    if link_mode is not None:
        env["UV_LINK_MODE"] = link_mode
    return run_scenario(wine_lab, tmp_path / "jobs", wheel_index.url, config=CONFIG, job_env=lambda _i: env)


def _report(tier_report: list[str], label: str, result: ScenarioResult) -> None:
    rounds = f", {CONFIG.rounds} rounds" if CONFIG.rounds > 1 else ""
    tier_report.append(f"{label}{rounds}: {result.summary().splitlines()[0]}")


def test_shared_cache_default_link_mode_fails_like_the_reports(
    wine_lab: Lab, wheel_index: IndexServer, tmp_path: Path, tier_report: list[str]
) -> None:
    result = _run(wine_lab, wheel_index, tmp_path, link_mode=None)
    _report(tier_report, "baseline, shared cache, default link mode", result)
    setup_failures = [job for job in result.jobs if any(s.name in ("venv", "install") and not s.ok
                                                        for s in job.steps)]
    assert not setup_failures, "jobs failed before the reinstall phase:\n" + result.summary()
    if not result.failures:
        pytest.xfail(f"this lab does not reproduce the reports: 0 of {CONFIG.jobs} jobs failed with the "
                     f"default link mode ({wine_lab.wine_version}, {wine_lab.uv_version})")
    for job in result.failures:
        # Only the reinstalling jobs can fail, and only with the reported errors.
        assert job.index % CONFIG.reinstall_every == 1, job.describe()
        assert {s.name.rstrip("0123456789") for s in job.failed_steps} <= {"reinstall", "verify"}, job.describe()
        assert any(s.name.startswith("reinstall") for s in job.failed_steps), job.describe()
        assert set(job.errors) & REPORTED, job.describe()


def test_shared_cache_copy_link_mode_has_no_failures(
    wine_lab: Lab, wheel_index: IndexServer, tmp_path: Path, tier_report: list[str]
) -> None:
    result = _run(wine_lab, wheel_index, tmp_path, link_mode="copy")
    _report(tier_report, "control, shared cache, UV_LINK_MODE=copy", result)
    # Copy mode removes the failure the baseline provokes: reinstalls over modules held loaded.
    assert [step for step in result.steps("reinstall") if not step.ok] == [], result.summary()
    assert "access-denied" not in result.error_counts, result.summary()
    # Plain uv on one shared cache can still meet its other races (seen once: the interpreter query,
    # "Internal error. (os error 1359)" under Wine). Those are reported above, not asserted here: they
    # are what a per-job cache removes, and the ci-cache scenario asserts 0 failures of any kind.
    assert len(result.steps("reinstall")) == CONFIG.rounds * (CONFIG.jobs // CONFIG.reinstall_every)
