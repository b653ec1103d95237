"""A soak under chaos: 8 concurrent jobs a round, real uv and real processes, with `prune`, `gc` and
`verify` running meanwhile and kill -9 of any ci-cache process (setup, its lease holder, the command's
`run`, finish, prune) at random moments.

Each job is `run -- uv pip install ...` or setup / the install / finish (as the wrappers do, with finish
run as a post step even when something of the job was killed), in isolated or shared mode. After every
round `ci-cache verify` passes; no job that was not killed fails; at the end everything merged installs
--offline from the shared cache.

The default run does a few rounds; CI_CACHE_SLOW=1 runs the long one (SOAK_ROUNDS, default 25), whose
figures the test prints (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ci_cache import jobdirs, verify
from ci_cache.store import Store
from ci_cache.tools.uv import UvTool
from ci_cache_index import IndexServer, build_index, demo_specs, scale_specs
from tests.integration.uvjobs import UV, Lab, alloc_env, offline_install

pytestmark = [pytest.mark.integration, pytest.mark.skipif(UV is None, reason="uv not installed (scripts/test)")]

SLOW = os.environ.get("CI_CACHE_SLOW") == "1"
ROUNDS = int(os.environ.get("SOAK_ROUNDS", "25")) if SLOW else 3
JOBS_PER_ROUND = 8
KILL_RATE = 0.35
POOL = [s.name for s in scale_specs(24, 4)] + ["demo-alpha", "demo-eta", "demo-gamma"]
# Where a kill lands: the ci-cache process it hits, and when (seconds after that process started).
KILLS = ("setup", "holder", "finish", "run")
SOAK_ENV = {
    "CI_CACHE_LEASE_TTL": "120s",  # a holder orphaned by a killed finish lets go in minutes, not a day
    "CI_CACHE_LOCK_TIMEOUT": "300s",
    # Older than this, a dead job's dir or a temp dir is reclaimed (a merge's staging, for one: no merge
    # here lasts that long; 0s would reclaim a live merge's staging, by definition).
    "CI_CACHE_GC_GRACE": "20s",
    "CI_CACHE_GC_INTERVAL": "1s",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    root = build_index(tmp_path_factory.mktemp("index"), [*demo_specs(), *scale_specs(24, 4)])
    with IndexServer(root) as srv:
        yield srv


@dataclass
class Job:
    name: str
    kind: str  # run | setup-finish
    mode: str  # isolated | shared
    packages: list[str]
    kill: str | None  # which ci-cache process to kill -9, if any
    killed: bool = False  # the kill hit a live process
    ok: bool = False
    problem: str = ""
    merged: bool = False  # its packages reached the shared cache (as far as it could tell)


@dataclass
class Figures:
    jobs: int = 0
    rounds: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    kills_missed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    verify_runs: int = 0
    maintenance: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def render(self) -> str:
        return (f"soak: {self.rounds} rounds, {self.jobs} jobs, kills by process {dict(sorted(self.kills.items()))} "
                f"(kill too late, process gone: {dict(sorted(self.kills_missed.items()))}), "
                f"maintenance {dict(sorted(self.maintenance.items()))}, {self.verify_runs} verify runs, "
                f"{len(self.failures)} failures of jobs not killed, {self.seconds:.0f}s")


class Soak:
    def __init__(self, lab: Lab, rng: random.Random) -> None:
        self.lab = lab
        self.rng = rng
        self.figures = Figures()
        self.lock = threading.Lock()
        self.spawned: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return self.lab.env(**SOAK_ENV, **extra)

    def cli(self, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "ci_cache", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.lab.tmp)
        with self.lock:
            self.spawned.append(proc)
        return proc

    def maybe_kill(self, proc: subprocess.Popen[str], job: Job, kind: str, within: float) -> None:
        """kill -9 `proc` after a random moment within `within` seconds, if this job's kill is `kind`."""
        if job.kill != kind:
            return
        time.sleep(self.rng.uniform(0.0, within))
        self._kill(proc.pid, job, kind)

    def _kill(self, pid: int, job: Job, kind: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            with self.lock:
                self.figures.kills_missed[kind] += 1
            return
        job.killed = True
        with self.lock:
            self.figures.kills[kind] += 1

    # -- one job

    def run_job(self, job: Job) -> None:
        try:
            if job.kind == "run":
                self._run(job)
            else:
                self._setup_finish(job)
        except Exception as exc:  # a broken test helper must show, not hang the round
            job.problem = f"{type(exc).__name__}: {exc}"

    def _install(self, job: Job) -> list[str]:
        return self.lab.install_cmd(self.lab.venv(job.name), job.packages)

    def _run(self, job: Job) -> None:
        proc = self.cli("run", "--job", job.name, "--mode", job.mode, "--", *self._install(job), env=self.env())
        killer = threading.Thread(target=self.maybe_kill, args=(proc, job, "run", 2.0))
        killer.start()
        _out, err = proc.communicate(timeout=600)
        killer.join()
        if proc.returncode == 0:
            job.ok = job.merged = "ci-cache: warning" not in err
            if not job.ok:
                job.problem = f"run warned: {err[-600:]}"
        else:
            job.problem = f"run exited {proc.returncode}: {err[-600:]}"

    def _setup_finish(self, job: Job) -> None:
        env = self.env(CI_CACHE_JOB=job.name)
        setup = self.cli("setup", "--mode", job.mode, "--format", "json", env=env)
        killer = threading.Thread(target=self.maybe_kill, args=(setup, job, "setup", 0.8))
        killer.start()
        out, err = setup.communicate(timeout=600)
        killer.join()
        alloc: dict[str, Any] = {}
        if setup.returncode == 0:
            alloc = json.loads(out)
        else:
            job.problem = f"setup exited {setup.returncode}: {err[-600:]}"
        step_env = alloc_env(env, alloc) if alloc else env
        if alloc and alloc.get("mode") != job.mode:
            job.problem = f"setup fell back to mode {alloc.get('mode')}: {err[-600:]}"
        if alloc and not job.problem:
            if job.kill == "holder":
                self._kill_holder(job)
            installed = subprocess.run(self._install(job), env=step_env, capture_output=True, text=True,
                                       check=False, timeout=600)
            if installed.returncode != 0:
                job.problem = f"the install failed: {installed.stderr[-600:]}"
        # The post step runs whatever happened before it, as GitHub's post step and GitLab's after_script do.
        finish = self.cli("finish", "--json", "--status", "failure" if job.problem else "success", env=step_env)
        killer = threading.Thread(target=self.maybe_kill, args=(finish, job, "finish", 1.2))
        killer.start()
        out, err = finish.communicate(timeout=600)
        killer.join()
        if job.problem:
            return
        if finish.returncode != 0:
            job.problem = f"finish exited {finish.returncode}: {err[-600:]}"
            return
        result = json.loads(out)
        if result.get("warnings"):
            job.problem = f"finish warned: {result['warnings']}"
            return
        job.ok = True
        job.merged = job.mode == "shared" or "failed" not in json.dumps(result.get("merged", {}))

    def _kill_holder(self, job: Job) -> None:
        record = jobdirs.current_record(Store(self.lab.root), _key(job.name)) or {}
        holder = record.get("holder_pid")
        if isinstance(holder, int) and _is_lease_holder(holder):
            self._kill(holder, job, "holder")

    # -- what runs meanwhile

    def maintenance(self, stop: threading.Event) -> None:
        """prune (sometimes killed -9), gc and verify, over and over, until the round ends."""
        while not stop.is_set():
            what = self.rng.choice(["prune", "gc", "verify", "prune-killed"])
            args = {"prune": ["prune", "--max-size", "10GB", "--max-age", "30d"], "gc": ["gc"],
                    "verify": ["verify"], "prune-killed": ["prune", "--max-size", "10GB"]}[what]
            proc = self.cli(*args, env=self.env())
            if what == "prune-killed":
                time.sleep(self.rng.uniform(0.05, 0.6))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                    with self.lock:
                        self.figures.kills["prune"] += 1
            _out, err = proc.communicate(timeout=600)
            with self.lock:
                self.figures.maintenance[what] += 1
            if what == "verify" and proc.returncode != 0:
                with self.lock:
                    self.figures.failures.append(f"verify while jobs ran: {err[-800:]}")
            elif what in ("prune", "gc") and proc.returncode != 0:
                with self.lock:
                    self.figures.failures.append(f"{what} exited {proc.returncode}: {err[-800:]}")
            stop.wait(self.rng.uniform(0.0, 0.3))

    def round(self, number: int) -> list[Job]:
        jobs = []
        for i in range(JOBS_PER_ROUND):
            kill = self.rng.choice(KILLS) if self.rng.random() < KILL_RATE else None
            kind = "run" if self.rng.random() < 0.5 else "setup-finish"
            if kill in ("setup", "holder", "finish") and kind == "run":
                kill = "run"
            if kill == "run" and kind != "run":
                kill = self.rng.choice(("setup", "holder", "finish"))
            jobs.append(Job(name=f"r{number}-j{i}", kind=kind, mode=self.rng.choice(["isolated", "shared"]),
                            packages=self.rng.sample(POOL, self.rng.randint(1, 3)), kill=kill))
        for job in jobs:
            self.lab.venv(job.name)  # made before the clock starts: not what the soak is about
        stop = threading.Event()
        keeper = threading.Thread(target=self.maintenance, args=(stop,))
        keeper.start()
        threads = [threading.Thread(target=self.run_job, args=(job,)) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        keeper.join()
        self.figures.jobs += len(jobs)
        self.figures.rounds += 1
        for job in jobs:
            if not job.killed and not job.ok:
                self.figures.failures.append(f"{job.name} ({job.kind}, {job.mode}, kill {job.kill} missed): "
                                             f"{job.problem}")
        return jobs

    def verify_clean(self, number: int) -> None:
        proc = self.lab.cli("verify", env=self.env())
        self.figures.verify_runs += 1
        if proc.returncode != 0:
            self.figures.failures.append(f"verify after round {number}: {proc.stderr[-1200:]}")

    def stop_leftovers(self) -> None:
        """Lease holders orphaned by killed finishes, and anything we started that still runs: ended."""
        for record in (self.lab.root / "jobs").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                holder = json.loads(record.read_text()).get("holder_pid")
                if isinstance(holder, int) and _is_lease_holder(holder):
                    os.kill(holder, signal.SIGKILL)
        for proc in self.spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _key(job: str) -> str:
    from ci_cache.providers import job_key

    return job_key(job)


def _is_lease_holder(pid: int) -> bool:
    """A process of ours running ci_cache.lease (never some other program that got the pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"ci_cache.lease" in cmdline


def test_soak_under_chaos(lab: Lab) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the soak finds lease holders through /proc")
    rng = random.Random(int(os.environ.get("SOAK_SEED", "20261130")))
    soak = Soak(lab, rng)
    started = time.monotonic()
    merged: set[str] = set()
    try:
        for number in range(ROUNDS):
            jobs = soak.round(number)
            merged |= {p for job in jobs if job.ok and job.merged for p in job.packages}
            soak.verify_clean(number)
            assert not soak.figures.failures, "\n".join(soak.figures.failures)
    finally:
        soak.figures.seconds = time.monotonic() - started
        print(soak.figures.render())
        soak.stop_leftovers()
    report = verify.check(UvTool(), lab.shared_uv)
    assert report.ok, verify.render(report)
    offline = offline_install(lab, sorted(merged), lab.shared_uv)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert soak.figures.jobs == ROUNDS * JOBS_PER_ROUND and merged
    assert sum(soak.figures.kills.values()) >= 1
