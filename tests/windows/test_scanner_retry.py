"""ci-cache's retry against a simulated on-access scanner (antivirus, EDR), under Wine.

A Windows python.exe (winside/scanner.py) polls a job's uv cache and holds every new file, and the
folders above it, open without delete sharing for 2 s, as scanners do; it remembers what it has
scanned, so the same bytes are not held twice. uv then fails to rename its temp folders into
`archive-v0` with "Sharing violation. (os error 32)", the error the reports show.

- Plain uv.exe, cold cache: some installs fail (the rate is reported in the tier summary). If none
  does, the test says that the scanner could not provoke uv under Wine, and stops there.
- `ci-cache run` (retry on, attempts 5, backoff 0.5 s), cold root: no install may fail, and the job
  summaries must show the retries that got them through.

CI_CACHE_WINE_SOAK raises the number of jobs of each kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ci_cache_index import IndexServer

from .scenario import TRANSIENT_PATTERNS
from .winagent import ci_cache_argv, run_to_exit, scanning
from .winlab import SOAK_ROUNDS, Arg, EnvValue, Lab

pytestmark = pytest.mark.windows

# Packages with many files (jinja2 brings markupsafe): more temp folders for the scanner to catch.
PACKAGES = ("pyyaml", "jinja2", "charset-normalizer")
# How often the scanner catches uv varies with the machine's load, so each kind runs at least its
# minimum of jobs, and more (up to a maximum) until it has seen what it is about: a plain install that
# failed, a ci-cache job that needed a retry.
PLAIN_JOBS = (20, 30) if SOAK_ROUNDS else (6, 16)
CICACHE_JOBS = (12, 18) if SOAK_ROUNDS else (4, 10)
ATTEMPTS = 5
UV_ENV: dict[str, EnvValue] = {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
RETRY_ENV: dict[str, EnvValue] = {"CI_CACHE_RETRY_BACKOFF": "0.5s", "CI_CACHE_RETRY_ATTEMPTS": str(ATTEMPTS)}


@dataclass
class Run:
    code: int
    stderr: str
    scanner: dict[str, Any]
    summary: dict[str, Any]

    @property
    def transient(self) -> list[str]:
        return [name for name, rx in TRANSIENT_PATTERNS.items() if rx.search(self.stderr)]

    def tail(self) -> str:
        return " | ".join(self.stderr.strip().splitlines()[-4:])


def install_argv(lab: Lab, target: Path, index_url: str) -> list[Arg]:
    return [lab.uv_exe, "pip", "install", "--python", lab.python_exe, "--target", target, "--index-url", index_url,
            *PACKAGES]


def plain_job(lab: Lab, workdir: Path, index_url: str) -> Run:
    cache = workdir / "uv-cache"
    with scanning(lab, cache) as counts:
        proc = run_to_exit(lab, install_argv(lab, workdir / "site", index_url),
                           env={**UV_ENV, "UV_CACHE_DIR": cache, "UV_LINK_MODE": "copy"})
    return Run(proc.returncode, proc.stderr, counts, {})


def cicache_job(lab: Lab, workdir: Path, index_url: str, job: str) -> Run:
    root = workdir / "root"
    summary = workdir / "summary.json"
    argv = ci_cache_argv(lab, "run", "--root", root, "--job", job, "--mode", "isolated", "--summary-json", summary,
                         "--", *install_argv(lab, workdir / "site", index_url))
    # The job's uv cache, whose dir is named anew for every allocation (jobs/<key>.<gen>/uv).
    with scanning(lab, root / "jobs", only="*/uv/*") as counts:
        proc = run_to_exit(lab, argv, env={**UV_ENV, **RETRY_ENV})
    data = json.loads(summary.read_text(encoding="utf-8")) if summary.exists() else {}
    return Run(proc.returncode, proc.stderr, counts, data)


def runs_until(jobs: tuple[int, int], run: Callable[[int], Run], seen: Callable[[Run], bool]) -> list[Run]:
    """At least jobs[0] runs, then more until one is `seen`, at most jobs[1]."""
    runs: list[Run] = []
    while len(runs) < jobs[0] or (len(runs) < jobs[1] and not any(map(seen, runs))):
        runs.append(run(len(runs)))
    return runs


def _rate(failed: int, total: int) -> str:
    return f"{failed} of {total} ({100 * failed / total:.0f}%)"


def test_retry_gets_uv_past_a_scanner(wine_lab: Lab, wheel_index: IndexServer, tmp_path: Path,
                                      tier_report: list[str]) -> None:
    plain = runs_until(PLAIN_JOBS, lambda i: plain_job(wine_lab, tmp_path / f"plain{i}", wheel_index.url),
                       lambda run: run.code != 0)
    assert all(run.scanner.get("held", 0) > 0 for run in plain), [run.scanner for run in plain]
    plain_failed = [run for run in plain if run.code != 0]
    tier_report.append(f"scanner, plain uv.exe (cold cache, no retry): {_rate(len(plain_failed), len(plain))} "
                       f"installs failed ({sorted({e for run in plain_failed for e in run.transient})})")
    # Whatever failed, failed the way the reports say, not for some other reason.
    for run in plain_failed:
        assert run.transient, f"a plain install failed without a transient error: {run.tail()}"
    if not plain_failed:
        pytest.skip(f"the simulated scanner provoked no uv failure in {len(plain)} plain installs under Wine "
                    f"({wine_lab.wine_version}, {wine_lab.uv_version}): nothing for ci-cache's retry to fix here")

    runs = runs_until(CICACHE_JOBS, lambda i: cicache_job(wine_lab, tmp_path / f"cicache{i}", wheel_index.url,
                                                          f"scan{i}"), lambda run: bool(run.summary.get("retries")))
    failed = [run for run in runs if run.code != 0]
    retried = [run for run in runs if run.summary.get("retries")]
    attempts = sorted(run.summary.get("attempts", 0) for run in runs)
    tier_report.append(f"scanner, ci-cache run (retry: {ATTEMPTS} attempts, backoff 0.5s): "
                       f"{_rate(len(failed), len(runs))} jobs failed; {len(retried)} needed retries; "
                       f"attempts per job {attempts}")

    assert not failed, "\n".join(f"exit {run.code}: {run.tail()}" for run in failed)
    for run in runs:
        assert run.summary["exit_code"] == 0 and run.summary["attempts"] == len(run.summary["retries"]) + 1
        assert run.summary["warnings"] == [], run.summary["warnings"]
    if not retried:
        pytest.skip(f"none of {len(runs)} ci-cache jobs met the scanner (no retries), though "
                    f"{len(plain_failed)} of {len(plain)} plain installs did: the retry went untested this time")
    for run in retried:
        # The summary names what was retried, in the words uv used.
        assert all(re.search(r"os error (5|32)|Sharing violation|Access", r) for r in run.summary["retries"]), (
            run.summary["retries"])
        count = len(run.summary["retries"])
        assert f"{count} retr{'y' if count == 1 else 'ies'} on transient cache errors" in run.stderr, run.stderr
