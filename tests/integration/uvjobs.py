"""Helpers for integration tests: real uv jobs run through the real ci-cache CLI, in real processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
BIN = str(Path(sys.executable).parent)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@dataclass
class Lab:
    """One isolated world: a ci-cache root, a fake home, and the env every process gets."""

    tmp: Path
    url: str
    root_at: Path | None = None  # a root elsewhere (on a small mount, say); default: <tmp>/root

    @property
    def root(self) -> Path:
        return self.root_at or self.tmp / "root"

    @property
    def shared_uv(self) -> Path:
        return self.root / "shared" / "uv"

    def env(self, **extra: str) -> dict[str, str]:
        home = self.tmp / "home"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV", "CI_CACHE_"))}
        env.update(
            CI_CACHE_ROOT=str(self.root),
            HOME=str(home),
            XDG_CACHE_HOME=str(home / ".cache"),
            UV_NO_PROGRESS="1",
            UV_NO_CONFIG="1",
            UV_PYTHON_DOWNLOADS="never",
            PATH=os.pathsep.join([BIN, env.get("PATH", "")]),
        )
        env.update(extra)
        return env

    def venv(self, name: str) -> Path:
        venv = self.tmp / "venvs" / name
        if not venv.exists():
            assert UV is not None
            subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                           env=self.env(UV_CACHE_DIR=str(self.tmp / "venv-cache")), capture_output=True)
        return venv

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ci_cache", *args], env=env or self.env(),
                              capture_output=True, text=True, timeout=timeout, cwd=cwd or self.tmp, check=False)

    def install_cmd(self, venv: Path, packages: Sequence[str], *extra: str) -> list[str]:
        return ["uv", "pip", "install", "--python", str(venv_python(venv)), "--index-url", self.url, *extra,
                *packages]

    def start_job(self, name: str, packages: Sequence[str], *flags: str,
                  env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        venv = self.venv(name)
        summary = self.tmp / f"{name}.summary.json"
        return subprocess.Popen(
            [sys.executable, "-m", "ci_cache", "run", "--job", name, "--summary-json", str(summary), *flags,
             "--", *self.install_cmd(venv, packages)],
            env=env or self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.tmp,
        )

    def summary(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.tmp / f"{name}.summary.json").read_text())
        return data


def tree_digest(path: Path) -> dict[str, str]:
    """Every file and link below `path` with a hash of its content (links: their text)."""
    digest: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath, name)
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                digest[rel] = "link:" + os.readlink(full)
            else:
                digest[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return digest


def offline_install(lab: Lab, packages: Sequence[str], cache: Path) -> subprocess.CompletedProcess[str]:
    """`uv pip install --offline` from `cache` into a fresh venv, then import every package."""
    venv = lab.venv(f"offline-{len(list(lab.tmp.glob('venvs/offline-*')))}")
    assert UV is not None
    env = lab.env(UV_CACHE_DIR=str(cache))
    proc = subprocess.run([UV, "pip", "install", "--offline", "--python", str(venv_python(venv)),
                           "--index-url", lab.url, *packages], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return proc
    modules = ",".join(p.replace("-", "_").split("=")[0] for p in packages)
    return subprocess.run([str(venv_python(venv)), "-c", f"import {modules}"], capture_output=True, text=True,
                          check=False)


def alloc_env(base: dict[str, str], alloc: dict[str, Any]) -> dict[str, str]:
    """The env of a job's later steps, from `setup --format json`: its variables, and its PATH dirs first."""
    env = {**base, **alloc.get("env", {})}
    prepend = alloc.get("path_prepend") or []
    if prepend:
        env["PATH"] = os.pathsep.join([*prepend, env.get("PATH", "")])
    return env
