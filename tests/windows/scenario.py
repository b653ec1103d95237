"""The user reports' scenario, reusable: N concurrent uv.exe jobs on one shared uv cache under Wine.

Every job creates its own venv (uv venv --python <embeddable python.exe>) and installs packages with
.pyd extensions into it. Then the even jobs keep those modules loaded in their venv's python.exe (as a
job's tests would) while the odd jobs run `uv pip install --reinstall` of the same set, and finally
every job checks that its venv still imports them. The holders hold until the reinstalls are done
(they wait on stdin), so the overlap does not depend on timing. On Windows, and under Wine, a file
that a running process has mapped cannot be deleted or renamed over, and with uv's default link mode
(hardlinks) all the venvs and the cache share the same file objects: so one job's reinstall fails on
another job's loaded module with "Access denied. (os error 5)" or "Sharing violation. (os error 32)".

`run_scenario` takes a per-job env and a per-job command wrapper, so the same scenario runs bare
(the baseline) or with every uv command wrapped, e.g. in `python.exe -m ci_cache run --`.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .winlab import Arg, EnvValue, Lab, run_windows, start_windows, to_windows

# Transient errors the user reports name (uv's wording, and Wine's wording of the same Windows errors).
TRANSIENT_PATTERNS = {
    "access-denied": re.compile(r"Access (is )?denied\. \(os error 5\)", re.IGNORECASE),
    "sharing-violation": re.compile(r"(Sharing violation|being used by another process)\. \(os error 32\)",
                                    re.IGNORECASE),
    "lock-violation": re.compile(r"(locked a portion of the file|Lock violation)\. \(os error 33\)",
                                 re.IGNORECASE),
    "record-invalid": re.compile(r"RECORD file is invalid", re.IGNORECASE),
}
# What the holder prints once its modules are imported.
READY = "modules-loaded"

JobEnv = Callable[[int], Mapping[str, EnvValue]]
# (job index, step name, argv) -> the argv to run instead, e.g. with a ci-cache wrapper in front. Step
# names: venv, install, hold<round>, reinstall<round>, verify.
Wrapper = Callable[[int, str, Sequence[Arg]], Sequence[Arg]]


@dataclass(frozen=True)
class ScenarioConfig:
    jobs: int = 8
    packages: tuple[str, ...] = ("pyyaml", "markupsafe", "charset-normalizer", "jinja2")
    # Modules whose .pyd files the holders keep mapped.
    modules: tuple[str, ...] = ("yaml", "markupsafe", "charset_normalizer")
    reinstall_every: int = 2  # jobs 1, 3, 5, ... (index % reinstall_every == 1) reinstall
    rounds: int = 1  # soak mode repeats the hold + reinstall phase
    step_timeout: float = 600.0
    # Files written into every job's folder (its cwd) first, e.g. the requirements its key_files name.
    job_files: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StepResult:
    name: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def errors(self) -> list[str]:
        """Names of the transient error patterns found in the output."""
        text = self.stdout + self.stderr
        return [name for name, pattern in TRANSIENT_PATTERNS.items() if pattern.search(text)]


@dataclass
class JobResult:
    index: int
    venv: Path
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failed_steps(self) -> list[StepResult]:
        return [step for step in self.steps if not step.ok]

    @property
    def errors(self) -> list[str]:
        return sorted({err for step in self.failed_steps for err in step.errors})

    def describe(self) -> str:
        if self.ok:
            return f"job {self.index}: ok"
        lines = [f"job {self.index}: failed ({', '.join(self.errors) or 'no known transient error'})"]
        for step in self.failed_steps:
            tail = (step.stderr.strip() or step.stdout.strip()).splitlines()[-3:]
            lines.append(f"  {step.name} exited {step.returncode}: " + " | ".join(tail))
        return "\n".join(lines)


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    jobs: list[JobResult]
    seconds: float

    @property
    def failures(self) -> list[JobResult]:
        return [job for job in self.jobs if not job.ok]

    @property
    def error_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.failures:
            for err in job.errors:
                counts[err] = counts.get(err, 0) + 1
        return counts

    def steps(self, prefix: str) -> list[StepResult]:
        """Every job's steps whose name starts with prefix, e.g. "reinstall"."""
        return [step for job in self.jobs for step in job.steps if step.name.startswith(prefix)]

    def summary(self) -> str:
        reinstalls = self.steps("reinstall")
        failed = [step for step in reinstalls if not step.ok]
        head = (f"{len(self.failures)} of {len(self.jobs)} jobs and {len(failed)} of {len(reinstalls)} "
                f"reinstalls failed in {self.seconds:.1f}s (errors: {self.error_counts or 'none'})")
        return "\n".join([head, *(job.describe() for job in self.failures)])


def _no_wrap(index: int, step: str, argv: Sequence[Arg]) -> Sequence[Arg]:
    return argv


def _no_env(index: int) -> Mapping[str, EnvValue]:
    return {}


def venv_python(venv: Path) -> Path:
    return venv / "Scripts" / "python.exe"


def holder_code(modules: Sequence[str]) -> str:
    """Python for a holder: import the modules (mapping their .pyd files), say so, keep them until EOF."""
    imports = "; ".join(f"import {m}" for m in modules)
    return f"import sys; {imports}; print({READY!r}, flush=True); sys.stdin.read()"


class _Job:
    def __init__(self, index: int, lab: Lab, workdir: Path, index_url: str, *, config: ScenarioConfig,
                 env: Mapping[str, EnvValue], wrap: Wrapper) -> None:
        self.index, self.lab, self.config, self.wrap = index, lab, config, wrap
        self.dir = workdir / f"job{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, text in config.job_files:
            (self.dir / name).write_text(text, encoding="utf-8")
        self.result = JobResult(index=index, venv=self.dir / "venv")
        self.index_url = index_url
        self.env: dict[str, EnvValue] = {"UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never",
                                         "UV_NO_CONFIG": "1", **env}

    @property
    def setup_ok(self) -> bool:
        done = {step.name: step.ok for step in self.result.steps}
        return done.get("venv", False) and done.get("install", False)

    @property
    def reinstalls(self) -> bool:
        return self.index % self.config.reinstall_every == 1

    def run(self, name: str, argv: Sequence[Arg]) -> StepResult:
        wrapped = list(self.wrap(self.index, name, argv))
        started = time.monotonic()
        try:
            proc = run_windows(wrapped, env=self.env, cwd=self.dir, timeout=self.config.step_timeout,
                               the_lab=self.lab)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            code, out, err = -9, _text(exc.stdout), _text(exc.stderr) + f"\ntimed out after {exc.timeout}s"
        step = StepResult(name, tuple(to_windows(a) if isinstance(a, os.PathLike) else a for a in wrapped),
                          code, out, err, time.monotonic() - started)
        self.result.steps.append(step)
        return step

    def uv_pip_install(self, *extra: str) -> list[Arg]:
        return [self.lab.uv_exe, "pip", "install", "--python", venv_python(self.result.venv),
                "--index-url", self.index_url, *extra, *self.config.packages]

    def setup(self) -> None:
        venv = self.result.venv
        if self.run("venv", [self.lab.uv_exe, "venv", "--python", self.lab.python_exe, venv]).ok:
            self.run("install", self.uv_pip_install())

    def hold(self, round_no: int) -> subprocess.Popen[str]:
        code = holder_code(self.config.modules)
        argv = self.wrap(self.index, f"hold{round_no}", [venv_python(self.result.venv), "-c", code])
        return start_windows(argv, env=self.env, cwd=self.dir, stdin=subprocess.PIPE, the_lab=self.lab)

    def reinstall(self, round_no: int) -> None:
        self.run(f"reinstall{round_no}", self.uv_pip_install("--reinstall"))

    def verify(self) -> None:
        imports = "; ".join(f"import {m}" for m in self.config.modules)
        self.run("verify", [venv_python(self.result.venv), "-c", imports])


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _holder_step(round_no: int, proc: subprocess.Popen[str], out: str, err: str, started: float) -> StepResult:
    code = proc.returncode if proc.returncode is not None else -9
    # A holder that exited 0 without ever saying it had loaded its modules failed all the same.
    return StepResult(f"hold{round_no}", tuple(map(str, proc.args)) if isinstance(proc.args, list) else (),
                      code if code != 0 or READY in out else -1, out, err, time.monotonic() - started)


def _wait_ready(job: _Job, proc: subprocess.Popen[str], round_no: int, timeout: float) -> bool:
    """Block until the holder has its modules loaded; a holder that dies or hangs is recorded as failed."""
    assert proc.stdout is not None
    started = time.monotonic()
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if READY in line:
        return True
    out, err = _release(proc, timeout)
    job.result.steps.append(_holder_step(round_no, proc, line + out, err, started))
    return False


def _release(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Close the holder's stdin (it exits on EOF) and collect the rest of its output."""
    try:
        return proc.communicate(timeout=timeout)  # closes stdin first
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def run_scenario(
    lab: Lab,
    workdir: Path,
    index_url: str,
    *,
    config: ScenarioConfig | None = None,
    job_env: JobEnv | None = None,
    wrap: Wrapper | None = None,
) -> ScenarioResult:
    """Run the scenario's jobs concurrently and return what each job's steps did.

    Phases, each across all jobs at once: venv + install; then (per round) start the holders (the jobs
    that do not reinstall), wait until every holder has its modules loaded, run the reinstalls, release
    the holders; then verify.
    A job whose setup failed sits out the later phases.
    """
    cfg = config or ScenarioConfig()
    started = time.monotonic()
    jobs = [_Job(i, lab, workdir, index_url, config=cfg, env=(job_env or _no_env)(i), wrap=wrap or _no_wrap)
            for i in range(cfg.jobs)]
    with ThreadPoolExecutor(max_workers=cfg.jobs) as pool:
        list(pool.map(_Job.setup, jobs))
        for round_no in range(1, cfg.rounds + 1):
            _hold_and_reinstall(pool, [job for job in jobs if job.setup_ok], round_no, cfg)
        list(pool.map(_Job.verify, [job for job in jobs if job.setup_ok]))
    return ScenarioResult(cfg, [job.result for job in jobs], time.monotonic() - started)


def _hold_and_reinstall(pool: ThreadPoolExecutor, live: list[_Job], round_no: int, cfg: ScenarioConfig) -> None:
    # A job cannot reinstall what its own python.exe has mapped, on any Windows and whatever the cache:
    # the reports are about other jobs' processes. So the jobs that reinstall are not the ones holding
    # modules at that moment.
    holders = [(job, job.hold(round_no)) for job in live if not job.reinstalls]
    started = time.monotonic()
    ready = [False] * len(holders)
    try:
        # Every holder has its modules mapped before any reinstall starts: that is the point.
        ready = list(pool.map(lambda jh: _wait_ready(jh[0], jh[1], round_no, cfg.step_timeout), holders))
        list(pool.map(lambda job: job.reinstall(round_no), [job for job in live if job.reinstalls]))
    finally:
        outputs = list(pool.map(lambda jh: _release(jh[1], cfg.step_timeout), holders))
        for (job, proc), was_ready, (out, err) in zip(holders, ready, outputs, strict=True):
            if was_ready and proc.returncode != 0:
                job.result.steps.append(_holder_step(round_no, proc, READY + out, err, started))
