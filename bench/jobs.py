"""One benchmark job: its scratch dir, the timed steps, the uv venv + install every strategy shares."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.wheels import python_in

# Variables that would steer uv or ci-cache away from what a strategy sets up, or make ci-cache think
# it runs under a CI provider: the bench hands each job a clean environment.
_DROPPED_PREFIXES = ("UV_", "CI_CACHE_", "GITHUB_", "GITLAB_", "JENKINS_", "RUNNER_", "PIP_", "VIRTUAL_ENV")
_DROPPED_NAMES = ("CI", "BUILD_ID", "BUILD_NUMBER", "JOB_NAME", "NODE_NAME", "EXECUTOR_NUMBER", "WORKSPACE",
                  # An installed ci-cache has its bytecode (pip compiles it): a developer's setting must not make
                  # every measured process compile ci-cache from source (G1 measured that before).
                  "PYTHONDONTWRITEBYTECODE")


class JobError(Exception):
    """A command of the job failed; the message carries the tail of its output."""


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED_NAMES}
    out["UV_NO_CONFIG"] = "1"  # a developer's uv.toml must not change what is measured
    out["UV_PYTHON_DOWNLOADS"] = "never"
    return out


@dataclass(frozen=True)
class Setup:
    """What every job of a run shares."""

    uv: Path
    python: Path  # interpreter the job venvs are made from
    index_url: str
    requirements: Path
    env: Mapping[str, str]  # clean base environment
    ci_cache: Path  # the ci-cache CLI


@dataclass
class Job:
    id: str
    dir: Path  # scratch: the venv, a private cache, archives
    state: Path  # the strategy's state shared by all jobs of the variant
    link_mode: str = "default"
    phases: dict[str, float] = field(default_factory=dict)  # seconds per timed step
    info: dict[str, float] = field(default_factory=dict)  # other numbers a step reported (files merged...)
    cache: Path | None = None  # the uv cache the job's install used, when private to the job
    env: dict[str, str] = field(default_factory=dict)  # what `begin` handed out, for `end`

    @property
    def venv(self) -> Path:
        return self.dir / "venv"

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0


def run(cmd: Sequence[str | os.PathLike[str]], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """Run a command to completion and return its stdout; raise JobError with its output if it fails."""
    proc = subprocess.run(
        [os.fspath(c) for c in cmd], env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
        raise JobError(f"{os.path.basename(os.fspath(cmd[0]))} exited {proc.returncode}: {tail}")
    return proc.stdout


# One shell line for both steps, so a wrapper such as `ci-cache run --` covers the whole job.
_SH_INSTALL = '"$0" venv -q --python "$1" "$2" && exec "$0" pip install -q --python "$3" --index-url "$4" -r "$5"'


def install(setup: Setup, job: Job, env: Mapping[str, str], prefix: Sequence[str] = ()) -> None:
    """What every job does whatever the strategy: create a venv and install the requirements with uv.

    uv is looked up on the job's PATH first, so ci-cache's shared-mode shims (put first on PATH by
    `setup`) are used, as they would be in a CI script.
    """
    env = dict(env)
    if job.link_mode != "default":
        env["UV_LINK_MODE"] = job.link_mode
    uv = shutil.which("uv", path=env.get("PATH")) or os.fspath(setup.uv)
    venv_python = python_in(job.venv)
    if prefix:
        args: list[str | os.PathLike[str]] = [uv, setup.python, job.venv, venv_python, setup.index_url]
        args.append(setup.requirements)
        with job.timed("wrapped"):
            run([*prefix, "sh", "-c", _SH_INSTALL, *args], env, cwd=job.dir)
        return
    with job.timed("venv"):
        run([uv, "venv", "-q", "--python", setup.python, job.venv], env)
    with job.timed("install"):
        cmd: list[str | os.PathLike[str]] = [uv, "pip", "install", "-q", "--python", venv_python]
        run([*cmd, "--index-url", setup.index_url, "-r", setup.requirements], env)


def with_bench_path(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with this repo on PYTHONPATH, for the bench's own helper processes (`python -m bench.x`)."""
    repo = str(Path(__file__).resolve().parent.parent)
    old = env.get("PYTHONPATH")
    return {**env, "PYTHONPATH": repo + (os.pathsep + old if old else "")}


def rmtree(path: Path) -> None:
    """Delete a tree: with `rm -rf` where there is one (a third faster than Python on a disk, and the
    bench deletes every job's venv and caches between waves), else, or if that fails, in Python."""
    rm = shutil.which("rm") if os.name != "nt" else None
    if rm is not None and subprocess.run([rm, "-rf", "--", os.fspath(path)], check=False).returncode == 0:
        return

    def onerror(func: object, p: str, exc: object) -> None:
        # Read-only files (uv marks some) block deletion on Windows; retry once writable.
        try:
            os.chmod(p, stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=onerror)


def sync() -> None:
    """Flush the page cache to disk (POSIX `sync`); nothing to do where there is none."""
    if hasattr(os, "sync"):
        os.sync()


def _walk_files(root: Path) -> Iterator[os.stat_result]:
    stack = [os.fspath(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            else:
                yield entry.stat(follow_symlinks=False)


def _allocated(st: os.stat_result) -> int:
    blocks = getattr(st, "st_blocks", None)
    return int(blocks) * 512 if blocks is not None else st.st_size


def inodes(paths: Sequence[Path]) -> set[tuple[int, int]]:
    return {(st.st_dev, st.st_ino) for p in paths if p.exists() for st in _walk_files(p)}


def disk_bytes(paths: Sequence[Path], exclude: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated to the files under `paths`, each inode counted once and `exclude`d ones not at all.

    Excluding the shared store's inodes makes a hardlinked file free, as it is on disk.
    """
    seen = set(exclude or ())
    total = 0
    for p in paths:
        if not p.exists():
            continue
        for st in _walk_files(p):
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += _allocated(st)
    return total


def count_files(root: Path) -> int:
    return sum(1 for _ in _walk_files(root)) if root.exists() else 0
