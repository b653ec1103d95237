"""The reports' scenario at scale under a simulated on-access scanner: 8 jobs x 5 waves through ci-cache.

Every uv step of every job runs through `python.exe -m ci_cache run --mode isolated` (the Windows Python
driving uv.exe: the way users run it), with retries on, and with `key_files: [requirements.txt]` so that
each call seeds what the job needs. One scanner (winside/scanner.py) runs throughout, watching the roots
(shared caches and job dirs) and the jobs' own folders (their venvs): it holds every new file, and the
folders above it, for 2 s without delete sharing. The index sits behind the network a CI agent has to a
public index (latency and a shared bandwidth cap): on loopback a cold download costs nothing, which no
agent sees.

Wave 1 starts cold on the main root. In waves 2 to 5, six jobs run warm on the main root and two run cold,
each wave on a fresh root of its own: cold and warm jobs then meet the same load (this machine's load
varies from wave to wave), and the tier summary compares them within the waves as well as wave 1 with the
rest. No timing is asserted (speed claims are the bench's); the figures are reported.

Asserted: no job fails; no call runs unprotected (setup falling back to running without ci-cache);
`verify` of the main root is clean after every wave; no call warns about its cleanup (other warnings are
reported word for word); the warm calls merge nothing new (they were warm); and afterwards one `ci-cache
gc`, with its default grace period, reclaims every job dir that was held open at finish, leaving no stale
job.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest

from ci_cache_index import IndexServer, NetworkProfile

from .scenario import ScenarioConfig, ScenarioResult, Wrapper, run_scenario
from .winagent import ci_cache_argv, run_to_exit, scanning
from .winlab import Arg, EnvValue, Lab, to_windows

pytestmark = pytest.mark.windows

JOBS = 8
WAVES = 5
COLD_PER_WAVE = 2  # in waves 2 to 5, the last jobs run on a fresh root of their own
PACKAGES = ("pyyaml", "markupsafe", "charset-normalizer", "jinja2")
WAVE = ScenarioConfig(jobs=JOBS, packages=PACKAGES, rounds=1,
                      job_files=(("requirements.txt", "".join(f"{p}\n" for p in PACKAGES)),))
UV_STEPS = re.compile(r"(venv|install|reinstall\d+)\Z")
JOB_ENV: dict[str, EnvValue] = {
    "UV_NO_PROGRESS": "1",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_NO_CONFIG": "1",
    "CI_CACHE_KEY_FILES": "requirements.txt",
    "CI_CACHE_RETRY_ATTEMPTS": "5",
    "CI_CACHE_RETRY_BACKOFF": "0.5s",
    # The cheap gc at setup runs every 20 s here (10 min by default), so that it meets leftovers.
    "CI_CACHE_GC_INTERVAL": "20s",
}
UNPROTECTED = "without ci-cache"


def is_cold(wave: int, index: int) -> bool:
    return wave == 1 or index >= JOBS - COLD_PER_WAVE


def root_of(roots: Path, wave: int, index: int) -> Path:
    return roots / "main" if wave == 1 or not is_cold(wave, index) else roots / f"cold-w{wave}"


def wrap_for(lab: Lab, roots: Path, summaries: Path, wave: int) -> Wrapper:
    """Every uv step of job N becomes `ci-cache run --job wW-jN --mode isolated --summary-json ... -- uv ...`."""

    def wrap(index: int, step: str, argv: Sequence[Arg]) -> Sequence[Arg]:
        if not UV_STEPS.match(step):
            return argv
        return ci_cache_argv(lab, "run", "--root", root_of(roots, wave, index), "--job", f"w{wave}-j{index}",
                             "--mode", "isolated", "--summary-json", summaries / f"w{wave}-j{index}-{step}.json",
                             "--", *argv)

    return wrap


def calls(result: ScenarioResult, summaries: Path, wave: int) -> list[dict[str, Any]]:
    """Each ci-cache call of the wave: its job, step, seconds, stderr and summary ({} when it wrote none)."""
    found = []
    for job in result.jobs:
        for step in job.steps:
            if UV_STEPS.match(step.name):
                path = summaries / f"w{wave}-j{job.index}-{step.name}.json"
                summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
                found.append({"wave": wave, "job": job.index, "step": step.name, "seconds": step.seconds,
                              "cold": is_cold(wave, job.index), "stderr": step.stderr, "summary": summary})
    return found


def seen_per_dir(seen_log: Path, roots: Path) -> Counter[str]:
    """Files the scanner saw appear in each job dir (`<key>.<gen>`) of the main root."""
    jobs = to_windows(roots / "main" / "jobs").lower() + "\\"
    counts: Counter[str] = Counter()
    for line in seen_log.read_text(encoding="utf-8").splitlines():
        if line.lower().startswith(jobs):
            parts = PureWindowsPath(line[len(jobs):]).parts
            if len(parts) > 1 and not parts[0].startswith(".tmp"):
                counts[parts[0]] += 1
    return counts


def job_seconds(found: list[dict[str, Any]]) -> list[float]:
    """Per job, the time of its venv and install calls (the same work in every wave and on every root)."""
    per_job: dict[tuple[int, int], float] = {}
    for c in found:
        if c["step"] in ("venv", "install"):
            per_job[(c["wave"], c["job"])] = per_job.get((c["wave"], c["job"]), 0.0) + c["seconds"]
    return list(per_job.values())


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def breakdown(found: list[dict[str, Any]], step: str) -> str:
    """Medians of one kind of call: its wall time, the summary's phases, and the rest (starting Python,
    the record and the lease, which a scanner holds as it holds any new file)."""
    chosen = [c for c in found if c["step"] == step and c["summary"]]
    if not chosen:
        return f"{step}: none"
    phases = {name: _median([c["summary"]["phases"].get(name, 0.0) for c in chosen])
              for name in ("seed", "command", "merge", "cleanup")}
    rest = _median([c["seconds"] - sum(c["summary"]["phases"].values()) for c in chosen])
    parts = ", ".join(f"{name} {value:.2f}" for name, value in phases.items())
    return f"{step} {_median([c['seconds'] for c in chosen]):.2f}s ({parts}, the rest {rest:.2f})"


@pytest.fixture(scope="module")
def agent_index(wine_lab: Lab) -> Iterator[IndexServer]:
    """The lab's wheels behind the network a CI agent has to a public index (the bench's profile, see
    docs/benchmarks.md: 30 ms a request, 12.5 MB/s shared by every job): what a cold job pays there."""
    with IndexServer(wine_lab.index_dir, network=NetworkProfile(latency=0.030, bandwidth=12_500_000)) as server:
        yield server


def test_eight_jobs_five_waves_under_a_scanner(wine_lab: Lab, agent_index: IndexServer, tmp_path: Path,
                                               tier_report: list[str]) -> None:
    started = time.monotonic()
    roots, waves_dir, summaries = tmp_path / "roots", tmp_path / "waves", tmp_path / "summaries"
    summaries.mkdir()
    root = roots / "main"
    seen_log = tmp_path / "seen.txt"
    results: list[ScenarioResult] = []
    found: list[dict[str, Any]] = []
    verified: list[tuple[int, str]] = []
    downloads: list[int] = []  # wheels the index served, per wave
    with scanning(wine_lab, roots, waves_dir, seen_log=seen_log) as scanner:
        for wave in range(1, WAVES + 1):
            agent_index.clear_requests()
            result = run_scenario(wine_lab, waves_dir / f"w{wave}", agent_index.url, config=WAVE,
                                  job_env=lambda _i: JOB_ENV, wrap=wrap_for(wine_lab, roots, summaries, wave))
            results.append(result)
            found += calls(result, summaries, wave)
            downloads.append(len([p for p in agent_index.file_downloads() if p.endswith(".whl")]))
            proc = run_to_exit(wine_lab, ci_cache_argv(wine_lab, "verify", "--root", root))
            verified.append((proc.returncode, proc.stdout + proc.stderr))
            # Its venvs and its cold root are done with: the scanner's walks (it polls) stay the size of one
            # wave, so that it sees a new file as soon in wave 5 as in wave 1 (Unix deletes ignore Windows'
            # sharing rules).
            shutil.rmtree(waves_dir / f"w{wave}", ignore_errors=True)
            shutil.rmtree(roots / f"cold-w{wave}", ignore_errors=True)
    scenario_seconds = time.monotonic() - started
    status_before = json.loads(run_to_exit(wine_lab, ci_cache_argv(wine_lab, "status", "--root", root,
                                                                  "--json")).stdout)
    gc = run_to_exit(wine_lab, ci_cache_argv(wine_lab, "gc", "--root", root, "--json"))
    status_after = json.loads(run_to_exit(wine_lab, ci_cache_argv(wine_lab, "status", "--root", root,
                                                                 "--json")).stdout)
    reclaimed = json.loads(gc.stdout) if gc.returncode == 0 else {}

    summarized = [c for c in found if c["summary"]]
    unprotected = [c for c in found if UNPROTECTED in c["stderr"] or not c["summary"]]
    warnings = [(c["wave"], c["job"], c["step"], w) for c in summarized for w in c["summary"]["warnings"]]
    left = [c for c in summarized if c["summary"].get("cleanup", {}).get("left_for_gc")]
    retries = sum(len(c["summary"].get("retries", [])) for c in summarized)
    cleanup = [c["summary"]["phases"].get("cleanup", 0.0) for c in summarized]
    warm = [c for c in summarized if not c["cold"]]
    cold = [c for c in summarized if c["cold"]]
    paired_cold = [c for c in cold if c["wave"] > 1]
    first_wave = [c for c in cold if c["wave"] == 1]
    warm_merged = [c for c in warm if c["summary"]["merged"].get("uv", {}).get("entries", 0)]
    seeded = [c["summary"]["seeded"]["uv"].get("files", 0) for c in warm if "uv" in c["summary"]["seeded"]]
    seen = seen_per_dir(seen_log, roots)
    warm_dirs = [n for name, n in seen.items() if name.split(".", 1)[0] in
                 {c["summary"]["key"] for c in warm}]
    failures = [f"wave {w}: {r.summary()}" for w, r in enumerate(results, 1) if r.failures]

    tier_report.extend([
        f"scanner at scale ({JOBS} jobs x {WAVES} waves, each uv call through `ci-cache run --mode isolated`, "
        f"key_files, the scanner on the roots and the jobs' folders, the index behind 30 ms / 12.5 MB/s): "
        f"{len(found)} calls, {sum(len(r.failures) for r in results)} failed jobs, {len(unprotected)} unprotected, "
        f"{retries} retries, {len(warnings)} warnings, {len(left)} job dirs held open at finish (left for gc); "
        f"verify exits {[code for code, _ in verified]}; scanner held {scanner.get('held')} files, passed "
        f"{scanner.get('cached')} by its verdict cache, in {scanner.get('passes')} passes "
        f"({scenario_seconds / max(1, scanner.get('passes') or 1):.2f}s each); {scenario_seconds:.0f}s",
        *(f"  warning, wave {w} job {j} {step}: {text}" for w, j, step, text in warnings),
        *(f"  unprotected, wave {c['wave']} job {c['job']} {c['step']}: "
          f"{' | '.join(line for line in c['stderr'].splitlines() if 'ci-cache' in line)[-600:]}"
          for c in unprotected),
        *(f"  failed, {line}" for line in failures),
        f"  cleanup phase per call: median {_median(cleanup):.3f}s, max {max(cleanup, default=0):.3f}s",
        f"  per warm call: seed created {_median(seeded):.0f} files (median; min {min(seeded, default=0)}, max "
        f"{max(seeded, default=0)}); the scanner saw {_median(warm_dirs):.0f} files appear in its job dir "
        f"(median; max {max(warm_dirs, default=0)}): what its cleanup deletes",
        f"  job time (venv + install calls, median): wave 1 (cold) {_median(job_seconds(first_wave)):.1f}s; "
        f"waves 2-5: cold {_median(job_seconds(paired_cold)):.1f}s, warm {_median(job_seconds(warm)):.1f}s; "
        f"wheels downloaded per wave {downloads}; wave wall times {[round(r.seconds, 1) for r in results]}s",
        f"  per call, cold, medians: {'; '.join(breakdown(cold, step) for step in ('venv', 'install'))}",
        f"  per call, warm, medians: {'; '.join(breakdown(warm, step) for step in ('venv', 'install'))}",
        f"  after the waves: {len(status_before['finished_jobs'])} finished dirs left and "
        f"{len(status_before['stale_jobs'])} stale jobs; `ci-cache gc` (default grace) reclaimed "
        f"{len(reclaimed.get('reclaimed_finished', []))}; then {len(status_after['finished_jobs'])} finished, "
        f"{len(status_after['stale_jobs'])} stale, {len(status_after['trash'])} dirs in the background delete",
    ])

    assert not failures, "\n".join(failures)
    assert not unprotected, "\n".join(f"wave {c['wave']} job {c['job']} {c['step']}: {c['stderr'][-600:]}"
                                      for c in unprotected)
    assert all(code == 0 for code, _ in verified), verified
    # Cleanup never warns about a dir a scan holds (the summary says it once, as a fact); what else warns
    # (a step of another module that a scan outlasted) is in the tier summary, word for word.
    assert not [w for w in warnings if "job dir" in w[3]], warnings
    assert downloads[0] > 0 and not warm_merged, [(c["wave"], c["job"], c["step"]) for c in warm_merged]
    assert all(c["summary"]["exit_code"] == 0 and "cleanup" in c["summary"]["phases"] for c in summarized)
    assert gc.returncode == 0, gc.stderr
    assert sorted(reclaimed["reclaimed_finished"]) == sorted(j["dir"] for j in status_before["finished_jobs"])
    assert status_after["finished_jobs"] == [] and status_after["stale_jobs"] == []
    assert status_before["stale_jobs"] == [] and status_before["live_jobs"] == []
