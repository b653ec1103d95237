"""`ci-cache demo`: concurrent isolated uv jobs against a local index, in two waves, to watch it work.

Needs nothing but ci-cache and uv: the index is generated and served on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_cache import log
from ci_cache.errors import UsageError
from ci_cache.tools.uv import archive_ids
from ci_cache.tools.uv import find_uv as uv_on_path
from ci_cache_index import IndexServer, build_index, demo_specs

# Each job installs one of these; together they cover the demo index, sdist-only package included.
JOB_SETS = (
    ("demo-alpha",),
    ("demo-eta",),
    ("demo-alpha", "demo-theta"),
    ("demo-gamma", "demo-zeta", "demo-eta"),
)


@dataclass
class JobResult:
    name: str
    packages: tuple[str, ...]
    exit_code: int
    seconds: float
    summary: dict[str, Any]
    output: str


def find_uv(env: Mapping[str, str]) -> str:
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    found = str(beside) if beside.is_file() else uv_on_path(env)
    if not found:
        raise UsageError("the demo needs uv", hint="pip install uv (into the same environment as ci-cache)")
    return found


def _job_env(env: Mapping[str, str], root: Path, uv: str) -> dict[str, str]:
    job_env = {k: v for k, v in env.items() if not k.startswith(("UV_", "CI_CACHE_", "PIP_", "VIRTUAL_ENV"))}
    job_env.update({"CI_CACHE_ROOT": str(root), "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never",
                    "PATH": os.pathsep.join([str(Path(uv).parent), env.get("PATH", "")])})
    return job_env


@dataclass(frozen=True)
class _Demo:
    url: str
    work: Path
    job_env: dict[str, str]
    uv: str
    server: IndexServer


def _run_job(demo: _Demo, name: str, packages: tuple[str, ...]) -> JobResult:
    work, job_env, uv, url = demo.work, demo.job_env, demo.uv, demo.url
    venv = work / "venvs" / name
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    summary_file = work / f"{name}.summary.json"
    started = time.monotonic()
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], env=job_env, capture_output=True,
                   check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_cache", "run", "--mode", "isolated", "--job", name,
         "--summary-json", str(summary_file), "--",
         "uv", "pip", "install", "--python", str(python), "--index-url", url, *packages],
        env=job_env, capture_output=True, text=True, check=False,
    )
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return JobResult(name, packages, proc.returncode, time.monotonic() - started, summary,
                     proc.stdout + proc.stderr)


def _wave(demo: _Demo, label: str, jobs: int) -> list[JobResult]:
    server = demo.server
    server.clear_requests()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_job, demo, f"{label}-job{i + 1}", JOB_SETS[i % len(JOB_SETS)])
                   for i in range(jobs)]
        results = [f.result() for f in futures]
    downloads = [p for p in server.file_downloads() if not p.endswith(".metadata")]
    print(f"\n{label}: {jobs} concurrent jobs, {len(downloads)} package files downloaded from the index",
          file=sys.stderr)
    for r in results:
        uv_seed = r.summary.get("seeded", {}).get("uv", {})
        uv_merge = r.summary.get("merged", {}).get("uv", {})
        status = "ok" if r.exit_code == 0 else f"FAILED (exit {r.exit_code})"
        print(f"  {r.name:12} {status:8} {r.seconds:5.2f}s  installs {' '.join(r.packages):35} "
              f"seeded {uv_seed.get('files', 0):3} files, merged back {uv_merge.get('entries', 0)} entries "
              f"({uv_merge.get('kept_existing', 0)} already there)",
              file=sys.stderr)
        if r.exit_code != 0:
            print("    " + r.output.strip().replace("\n", "\n    "), file=sys.stderr)
    return results


def main(*, jobs: int, root: Path | None, env: Mapping[str, str]) -> int:
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    uv = find_uv(env)
    with tempfile.TemporaryDirectory(prefix="ci-cache-demo-") as tmp:
        work = Path(tmp)
        root = root or work / "root"
        log.info(f"demo: building a local package index of {len(demo_specs())} generated packages")
        build_index(work / "index", demo_specs())
        job_env = _job_env(env, root, uv)
        with IndexServer(work / "index") as server:
            log.info(f"demo: serving it at {server.url}; ci-cache root {root}")
            demo = _Demo(server.url, work, job_env, uv, server)
            first = _wave(demo, "wave1", jobs)
            first_downloads = len([p for p in server.file_downloads() if not p.endswith(".metadata")])
            second = _wave(demo, "wave2", jobs)
            second_downloads = len([p for p in server.file_downloads() if not p.endswith(".metadata")])
        shared = root / "shared" / "uv"
        archives = len(archive_ids(shared))
        failed = [r.name for r in first + second if r.exit_code != 0]
        print(f"\nshared uv cache {shared}: {archives} archives merged from the jobs", file=sys.stderr)
        print(f"wave 1 downloaded {first_downloads} files; wave 2 downloaded {second_downloads} "
              f"({'warm: everything came from the shared cache' if second_downloads == 0 else 'not fully warm'})",
              file=sys.stderr)
        if failed:
            log.error(f"demo: {len(failed)} job(s) failed: {', '.join(failed)}")
            return 1
        print(f"all {len(first) + len(second)} jobs succeeded", file=sys.stderr)
        return 0 if second_downloads == 0 else 1
