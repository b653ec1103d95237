"""Agents of a fleet for end-to-end tests: each a ci-cache root on this machine, whose jobs are real
`ci-cache run` processes running real uv against the local index, with the remote configured through
`CI_CACHE_REMOTE_*` variables and credentials in the cloud's own variables, as a CI would set them."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_cache_index import PackageSpec
from tests.remote import servers
from tests.remote.servers import BUCKET, Server

UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
BIN = str(Path(sys.executable).parent)
CLI = str(Path(BIN) / "ci-cache")


def remote_env(server: Server | None, prefix: str, identity: str = "admin", *, endpoint: str | None = None,
               **settings: str) -> dict[str, str]:
    """CI_CACHE_REMOTE_* for `server` (or another endpoint in front of it), plus the credentials of `identity`."""
    env: dict[str, str] = {}
    if server is not None and server.name == "Azurite":
        env["CI_CACHE_REMOTE_URL"] = f"az://{BUCKET}/{prefix}"
        env.update(servers.azurite_env(server))
    else:
        env["CI_CACHE_REMOTE_URL"] = f"s3://{BUCKET}/{prefix}"
        env["CI_CACHE_REMOTE_ENDPOINT"] = endpoint or (server.endpoint if server else "")
        env["CI_CACHE_REMOTE_ALLOW_HTTP"] = "true"
        if server is not None:
            env.update(servers.s3_env(server, identity))
    if endpoint and server is not None and server.name == "Azurite":
        env["CI_CACHE_REMOTE_ENDPOINT"] = endpoint
        env["CI_CACHE_REMOTE_ALLOW_HTTP"] = "true"
    env.update({f"CI_CACHE_REMOTE_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class JobRun:
    """One finished job: its process and the summary `run --summary-json` wrote."""

    name: str
    proc: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    workspace: Path

    @property
    def pulled(self) -> dict[str, Any]:
        return dict(self.summary.get("remote", {}).get("pull", {}).get("tools", {}).get("uv", {}))

    @property
    def pushed(self) -> dict[str, Any]:
        return dict(self.summary.get("remote", {}).get("push", {}).get("uv", {}))

    def describe(self) -> str:
        return f"job {self.name} exited {self.proc.returncode}\n{self.proc.stdout}\n{self.proc.stderr}"


class Agent:
    """One CI agent: a ci-cache root (its shared caches), a home, and its jobs' workspaces."""

    def __init__(self, folder: Path, index_url: str, remote: Mapping[str, str], *, mode: str = "isolated") -> None:
        self.folder = folder
        self.index_url = index_url
        self.remote = dict(remote)
        self.mode = mode
        self.jobs = 0
        (folder / "home").mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self.folder / "root"

    @property
    def shared_uv(self) -> Path:
        return self.root / "shared" / "uv"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV", "CI_CACHE_", "AWS_", "AZURE_", "GOOGLE_"))}
        home = self.folder / "home"
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), UV_NO_PROGRESS="1", UV_NO_CONFIG="1",
                   UV_PYTHON_DOWNLOADS="never", UV_INDEX_URL=self.index_url, CI_CACHE_ROOT=str(self.root),
                   CI_CACHE_MODE=self.mode, PATH=os.pathsep.join([BIN, env.get("PATH", "")]))
        env.update(self.remote)
        env.update(extra)
        return env

    @property
    def next_workspace(self) -> Path:
        """Where the next job's workspace will be (a CI names it before the job starts)."""
        return self.folder / "work" / f"job{self.jobs + 1}"

    def workspace(self, files: Mapping[str, str]) -> Path:
        work = self.next_workspace
        self.jobs += 1
        work.mkdir(parents=True)
        for name, text in files.items():
            (work / name).write_text(text)
        return work

    def start(self, files: Mapping[str, str], script: str, *, env: Mapping[str, str] | None = None,
              ) -> tuple[subprocess.Popen[str], Path]:
        """Start `ci-cache run -- sh -c SCRIPT` in a fresh workspace holding `files`; `$PY` is this Python.
        Its output goes to files in the workspace's folder."""
        work = self.workspace(files)
        argv = [CLI, "run", "--job", f"{self.folder.name}-{work.name}", "--summary-json",
                str(work.parent / f"{work.name}.summary.json"), "--", "sh", "-c", script]
        with open(work.parent / f"{work.name}.out", "w") as out, open(work.parent / f"{work.name}.err", "w") as err:
            proc = subprocess.Popen(argv, cwd=work, env=self.env(PY=sys.executable, **(env or {})), stdout=out,
                                    stderr=err, text=True)
        return proc, work

    def run(self, files: Mapping[str, str], script: str, *, env: Mapping[str, str] | None = None,
            timeout: float = 300) -> JobRun:
        """`start`, then wait for the job to end."""
        proc, work = self.start(files, script, env=env)
        proc.wait(timeout=timeout)
        return finished(proc, work)

    def install(self, requirements: str, *, offline: bool = False, then: str = "",
                env: Mapping[str, str] | None = None) -> JobRun:
        """A job that makes a venv and installs `requirements` (a requirements.txt's text) into it."""
        flags = " --offline" if offline else ""
        script = (f'uv venv -q --python "$PY" venv && uv pip install -q{flags} -p venv -r requirements.txt'
                  + (f" && {then}" if then else ""))
        return self.run({"requirements.txt": requirements}, script, env=env)

    def start_install(self, names: list[str], *, env: Mapping[str, str] | None = None,
                      ) -> tuple[subprocess.Popen[str], Path]:
        script = 'uv venv -q --python "$PY" venv && uv pip install -q -p venv -r requirements.txt'
        return self.start({"requirements.txt": "".join(f"{n}\n" for n in names)}, script, env=env)

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=self.env(**(env or {})), capture_output=True, text=True,
                              timeout=300, check=False, cwd=self.folder)


def finished(proc: subprocess.Popen[str], work: Path) -> JobRun:
    """What a job that `Agent.start` started left: its exit code, output and summary."""
    out, err, summary_file = (work.parent / f"{work.name}{suffix}" for suffix in (".out", ".err", ".summary.json"))
    completed = subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return JobRun(work.name, completed, summary, work)


def fleet_specs() -> list[PackageSpec]:
    """16 wheels, some depending on others, and one sdist-only package that uv builds."""
    specs = [PackageSpec(f"fleet-p{i:02d}", f"1.{i % 3}.0", deps=(f"fleet-p{(i + 5) % 16:02d}",) if i % 4 == 0 else (),
                         files=2, size=1536) for i in range(16)]
    specs.append(PackageSpec("fleet-src", "0.5.0", deps=("fleet-p01",), sdist=True, wheel=False))
    return specs


NAMES = sorted(s.project for s in fleet_specs())


def module(name: str) -> str:
    return name.replace("-", "_")


def mixes(count: int, size: int, seed: int = 15) -> list[list[str]]:
    """`count` different mixes of `size` packages."""
    combos = list(itertools.combinations(NAMES, size))
    random.Random(seed).shuffle(combos)
    return [list(c) for c in combos[:count]]


def install_job(agent: Agent, names: list[str], *, offline: bool = False, then: str = "",
                env: Mapping[str, str] | None = None) -> JobRun:
    """A job that installs `names` (a requirements.txt of bare names) and imports each of them."""
    check = f"venv/bin/python -c 'import {','.join(module(n) for n in names)}'" + (f" && {then}" if then else "")
    return agent.install("".join(f"{n}\n" for n in names), offline=offline, then=check, env=env)


def concurrently(work: list[tuple[Agent, list[str]]]) -> list[JobRun]:
    """One wave: every agent's job at once, each in its own process."""
    done: list[JobRun] = []
    threads = [threading.Thread(target=lambda a=agent, m=names: done.append(install_job(a, m)))
               for agent, names in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(done) == len(work)
    return done


def remote_warnings(job: JobRun) -> list[str]:
    return [w for w in job.summary.get("warnings", []) if "remote" in w]


