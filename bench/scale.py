"""Seed and merge against a big synthetic cache (targets P4a, P4b, P5), through the real CLI.

The shared cache is filled by a real uv install of generated packages (`ci_cache_index`), so it
has uv's real layout. Seeding is timed from ci-cache's own `phases.seed` and compared with `cp -al` of
the same tree; merging is timed from `phases.merge` for a job that adds about 1,000 new files.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import cic, floor, index, jobs
from bench.jobs import Job, JobError, Setup
from bench.model import ScaleResult
from bench.wheels import write_requirements
from ci_cache_index import PackageSpec, build_index, scale_specs

FILES_PER_PACKAGE = 96  # plus __init__.py and three dist-info files: 100 files per unpacked wheel


@dataclass(frozen=True)
class ScalePlan:
    packages: int  # 500 packages of 100 files make a cache of about 52,000 files
    repeats: int
    new_packages: int = 10  # merged per repeat: about 1,000 new files
    keyed_every: int = 10  # the keyed job needs every 10th package: 10% of the cache

    def specs(self) -> list[PackageSpec]:
        new = [
            PackageSpec(f"scale-new-{r}-{i}", "1.0.0", files=FILES_PER_PACKAGE, size=512)
            for r in range(self.repeats)
            for i in range(self.new_packages)
        ]
        return [*scale_specs(self.packages, FILES_PER_PACKAGE, size=512), *new]

    def base_names(self) -> list[str]:
        return [f"scale-pkg-{i:04d}" for i in range(self.packages)]

    def new_names(self, repeat: int) -> list[str]:
        return [f"scale-new-{repeat}-{i}" for i in range(self.new_packages)]


def phase_total(phases: Mapping[str, float], name: str) -> float | None:
    """`cic.<name>`, or the sum of its per-tool parts `cic.<name>.<tool>` when it is split."""
    if f"cic.{name}" in phases:
        return phases[f"cic.{name}"]
    parts = [v for k, v in phases.items() if k.startswith(f"cic.{name}.")]
    return sum(parts) if parts else None


class _Cli:
    """setup/finish of single jobs against one ci-cache root."""

    def __init__(self, setup: Setup, root: Path, scratch: Path) -> None:
        self.setup, self.root, self.scratch = setup, root, scratch
        self.count = 0

    def begin(self, mode: str, extra_env: Mapping[str, str], requirements: list[str] | None) -> Job:
        self.count += 1
        job_dir = self.scratch / f"s{self.count}"
        job_dir.mkdir(parents=True)
        job = Job(id=f"s{self.count}", dir=job_dir, state=self.root)
        env = {**self.setup.env, **cic.config_env("link", "default"), **extra_env}
        if requirements is not None:
            write_requirements(job_dir / "requirements.txt", requirements)
            env["CI_CACHE_KEY_FILES"] = "requirements.txt"
        cmd = [str(self.setup.ci_cache), "setup", "--format", "json", "--job", job.id, "--mode", mode]
        with job.timed("setup"):
            out = jobs.run([*cmd, "--root", str(self.root)], env, cwd=job_dir)
        data: Any = cic.parse_json_output(out)
        if not isinstance(data, dict):
            raise JobError(f"ci-cache setup printed no JSON object: {out[-300:]!r}")
        job.phases.update(cic.read_summary(data)[0])
        job.env = cic.job_env(env, data)
        caches = data.get("caches") or {}
        job.cache = Path(str(caches["uv"])) if isinstance(caches, dict) and caches.get("uv") else None
        return job

    def install(self, job: Job, names: list[str]) -> None:
        reqs = write_requirements(job.dir / "install.txt", names)
        jobs.install(replace(self.setup, requirements=reqs), job, job.env)

    def end(self, job: Job) -> None:
        cmd = [str(self.setup.ci_cache), "finish", "--json", "--job", job.id, "--root", str(self.root)]
        with job.timed("finish"):
            out = jobs.run(cmd, job.env, cwd=job.dir)
        job.phases.update(cic.read_summary(cic.parse_json_output(out))[0])  # finish repeats setup's phases
        jobs.rmtree(job.dir)


def _phase_or_wall(job: Job, name: str, wall: str, notes: list[str]) -> float:
    value = phase_total(job.phases, name)
    if value is None:
        note = f"scale: ci-cache reported no phases.{name}; used the wall time of `{wall}` instead"
        if note not in notes:
            notes.append(note)
        return job.phases[wall]
    return value


def run(plan: ScalePlan, setup: Setup, home: Path, work: Path, notes: list[str]) -> ScaleResult:
    index_root = home / "bench-scale" / f"{plan.packages}x{FILES_PER_PACKAGE}"
    print(f"bench: scale set: building {plan.packages} packages into {index_root}", file=sys.stderr)
    build_index(index_root, plan.specs())
    result = ScaleResult(packages=plan.packages, keyed_fraction=1.0 / plan.keyed_every)
    root = work / "scale-root"
    with index.serve(index_root, simple_max_age=0) as srv:
        cli = _Cli(replace(setup, index_url=srv.url), root, work / "scale-jobs")
        print("bench: scale set: filling the shared cache", file=sys.stderr)
        job = cli.begin("shared", {}, None)
        cli.install(job, plan.base_names())
        shared_uv = job.cache
        cli.end(job)
        if shared_uv is None:
            raise JobError("ci-cache setup --mode shared named no uv cache")
        result.cache_files = jobs.count_files(shared_uv)
        if floor.available():
            copies = floor.measure(shared_uv, work / "scale-floor", plan.repeats)
            result.cp_al, result.cp_a = copies["cp -al"], copies["cp -a"]
        never = {"CI_CACHE_MERGE": "never"}
        keyed = plan.base_names()[:: plan.keyed_every]
        for _ in range(plan.repeats):
            job = cli.begin("isolated", never, None)
            cli.end(job)
            result.seed_full.append(_phase_or_wall(job, "seed", "setup", notes))
            job = cli.begin("isolated", never, keyed)
            cli.end(job)
            result.seed_keyed.append(_phase_or_wall(job, "seed", "setup", notes))
        deltas: list[int] = []
        for r in range(plan.repeats):
            job = cli.begin("isolated", {}, plan.new_names(r))
            cli.install(job, plan.new_names(r))
            before = jobs.count_files(shared_uv)
            cli.end(job)
            deltas.append(jobs.count_files(shared_uv) - before)
            result.merge.append(_phase_or_wall(job, "merge", "finish", notes))
        result.merge_new_files = int(statistics.median(deltas))
    jobs.rmtree(root)
    return result
