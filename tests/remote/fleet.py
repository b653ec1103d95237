"""Agents of a fleet for end-to-end tests: each a ci-cache root on this machine, whose jobs are real
`ci-cache run` processes running real uv against the local index, with the remote configured through
`CI_CACHE_REMOTE_*` variables and credentials in the cloud's own variables, as a CI would set them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def workspace(self, files: Mapping[str, str]) -> Path:
        self.jobs += 1
        work = self.folder / "work" / f"job{self.jobs}"
        work.mkdir(parents=True)
        for name, text in files.items():
            (work / name).write_text(text)
        return work

    def run(self, files: Mapping[str, str], script: str, *, name: str = "", env: Mapping[str, str] | None = None,
            timeout: float = 300) -> JobRun:
        """`ci-cache run -- sh -c SCRIPT` in a fresh workspace holding `files`; `$PY` is this Python."""
        work = self.workspace(files)
        summary_file = work.parent / f"{work.name}.summary.json"
        argv = [CLI, "run", "--job", f"{self.folder.name}-{work.name}", "--summary-json", str(summary_file), "--",
                "sh", "-c", script]
        proc = subprocess.run(argv, cwd=work, env=self.env(PY=sys.executable, **(env or {})), capture_output=True,
                              text=True, timeout=timeout, check=False)
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        return JobRun(name or work.name, proc, summary, work)

    def install(self, requirements: str, *, offline: bool = False, then: str = "", **kw: Any) -> JobRun:
        """A job that makes a venv and installs `requirements` (a requirements.txt's text) into it."""
        flags = " --offline" if offline else ""
        script = (f'uv venv -q --python "$PY" venv && uv pip install -q{flags} -p venv -r requirements.txt'
                  + (f" && {then}" if then else ""))
        return self.run({"requirements.txt": requirements}, script, **kw)

    def cli(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=self.env(**(env or {})), capture_output=True, text=True,
                              timeout=300, check=False, cwd=self.folder)


def imports(job: JobRun, modules: list[str]) -> str:
    """A check the job's command runs after its install: every module imports from the venv."""
    return f"venv/bin/python -c 'import {','.join(modules)}'" if modules else "true"
