"""Seed, merge and per-job costs against big synthetic caches (P4a, P4b, P5, G2, G4), through the real CLI.

The shared cache is filled by a real uv install of generated packages (`ci_cache_index`), so it has
uv's real layout. Seeding is timed from ci-cache's own `phases.seed` and compared with `cp -al` of the
same tree; merging is timed from `phases.merge` for a job that adds about 1,000 new files.

The "10% job" needs every 10th package of the scale set. It is seeded three ways: by `key_files`
naming its requirements file, and with no configuration at all, only that file in the job's workspace
(its working directory), where ci-cache is to find it by itself (goal 2). Run whole through
`ci-cache run`, its per-job overhead (everything but the uv command) is measured against the scale
set and against a shared cache ten times larger that holds the same packages and more (goal 4).
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ci_cache_index
from bench import cic, floor, index, jobs
from bench.jobs import Job, JobError, Setup
from bench.model import ScaleResult
from bench.wheels import write_requirements
from ci_cache_index import PackageSpec, build_index, scale_specs

FILES_PER_PACKAGE = 96  # plus __init__.py and three dist-info files: 100 files per unpacked wheel
CACHE_FILES_PER_PACKAGE = 105  # in the uv cache: the unpacked wheel and its entry's pointer files (measured)
REQUIREMENTS = "requirements.txt"  # the 10% job's file, in its workspace
BIG_FACTOR = 10  # the big scale point holds ten times the packages


@dataclass(frozen=True)
class ScalePlan:
    packages: int  # 500 packages of 100 files make a cache of about 52,000 files
    repeats: int
    new_packages: int = 10  # merged per repeat: about 1,000 new files
    keyed_every: int = 10  # the 10% job needs every 10th package
    copy_floor: bool = True  # also time `cp -a` of the scale cache (slow on a disk)

    def specs(self) -> list[PackageSpec]:
        new = [
            PackageSpec(f"scale-new-{r}-{i}", "1.0.0", files=FILES_PER_PACKAGE, size=512)
            for r in range(self.repeats)
            for i in range(self.new_packages)
        ]
        return [*scale_specs(self.packages, FILES_PER_PACKAGE, size=512), *new]

    def base_names(self) -> list[str]:
        return [f"scale-pkg-{i:04d}" for i in range(self.packages)]

    def job_names(self) -> list[str]:
        """What the 10% job needs."""
        return self.base_names()[:: self.keyed_every]

    def new_names(self, repeat: int) -> list[str]:
        return [f"scale-new-{repeat}-{i}" for i in range(self.new_packages)]

    def big(self) -> ScalePlan:
        """The point ten times larger: the same packages first, so the 10% job's names are in it too."""
        return replace(self, packages=self.packages * BIG_FACTOR, new_packages=0, copy_floor=False)


def phase_total(phases: Mapping[str, float], name: str) -> float | None:
    """`cic.<name>`, or the sum of its per-tool parts `cic.<name>.<tool>` when it is split."""
    if f"cic.{name}" in phases:
        return phases[f"cic.{name}"]
    parts = [v for k, v in phases.items() if k.startswith(f"cic.{name}.")]
    return sum(parts) if parts else None


def specs_digest(specs: Sequence[PackageSpec]) -> str:
    """What an index build depends on: the specs and the code of the index builder."""
    h = hashlib.sha256(repr(sorted(specs, key=lambda s: (s.project, s.version))).encode())
    for src in sorted(Path(ci_cache_index.__file__).parent.glob("*.py")):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return h.hexdigest()


def ensure_index(root: Path, specs: Sequence[PackageSpec]) -> bool:
    """Build the index unless the stamp beside it says these specs were built by this code; True if built.

    Building 5,000 packages takes about 40 s even when nothing changed (every wheel is zipped
    again to compare it), so an unchanged index is not rebuilt at all.
    """
    stamp = root.with_name(root.name + ".stamp")
    digest = specs_digest(specs)
    try:
        if stamp.read_text(encoding="utf-8").strip() == digest and (root / "simple").is_dir():
            return False
    except OSError:
        pass
    stamp.unlink(missing_ok=True)
    build_index(root, specs)
    stamp.write_text(digest + "\n", encoding="utf-8")
    return True


class _Cli:
    """Single ci-cache jobs against one root, each in its own workspace under `scratch`."""

    def __init__(self, setup: Setup, root: Path, scratch: Path) -> None:
        self.setup, self.root, self.scratch = setup, root, scratch
        self.count = 0

    def _workspace(self, requirements: list[str] | None) -> Job:
        self.count += 1
        job_dir = self.scratch / f"s{self.count}"
        job_dir.mkdir(parents=True)
        if requirements is not None:
            write_requirements(job_dir / REQUIREMENTS, requirements)
        return Job(id=f"s{self.count}", dir=job_dir, state=self.root)

    def _env(self, extra: Mapping[str, str], key_files: bool) -> dict[str, str]:
        env = {**self.setup.env, **cic.config_env("link", "default"), **extra}
        if key_files:
            env["CI_CACHE_KEY_FILES"] = REQUIREMENTS
        return env

    def begin(self, mode: str, extra_env: Mapping[str, str], requirements: list[str] | None, *,
              key_files: bool = False) -> tuple[Job, dict[str, Any]]:
        """`ci-cache setup`; `requirements` go into the job's workspace, named by key_files if asked."""
        job = self._workspace(requirements)
        env = self._env(extra_env, key_files)
        cmd = [str(self.setup.ci_cache), "setup", "--format", "json", "--job", job.id, "--mode", mode]
        with job.timed("setup"):
            out = jobs.run([*cmd, "--root", str(self.root)], env, cwd=job.dir)
        data: Any = cic.parse_json_output(out)
        if not isinstance(data, dict):
            raise JobError(f"ci-cache setup printed no JSON object: {out[-300:]!r}")
        job.phases.update(cic.read_summary(data)[0])
        job.env = cic.job_env(env, data)
        caches = data.get("caches") or {}
        job.cache = Path(str(caches["uv"])) if isinstance(caches, dict) and caches.get("uv") else None
        return job, data

    def install(self, job: Job, names: list[str]) -> None:
        reqs = write_requirements(job.dir / "install.txt", names)
        jobs.install(replace(self.setup, requirements=reqs), job, job.env)

    def end(self, job: Job) -> dict[str, Any]:
        cmd = [str(self.setup.ci_cache), "finish", "--json", "--job", job.id, "--root", str(self.root)]
        with job.timed("finish"):
            out = jobs.run(cmd, job.env, cwd=job.dir)
        data = cic.parse_json_output(out)
        job.phases.update(cic.read_summary(data)[0])  # finish repeats setup's phases
        jobs.rmtree(job.dir)
        return data if isinstance(data, dict) else {}

    def run_job(self, requirements: list[str]) -> Job:
        """The 10% job whole: `ci-cache run --mode isolated -- <uv venv && uv pip install -r requirements.txt>`,
        with nothing configured but its workspace's requirements file."""
        job = self._workspace(requirements)
        summary = job.dir / "summary.json"
        prefix = [str(self.setup.ci_cache), "run", "--retry", "--summary-json", str(summary), "--job", job.id,
                  "--mode", "isolated", "--root", str(self.root), "--"]
        jobs.install(replace(self.setup, requirements=job.dir / REQUIREMENTS), job, self._env({}, False), prefix)
        phases, _counts = cic.read_summary(cic.parse_json_output(summary.read_text(encoding="utf-8")))
        job.phases.update(phases)
        jobs.rmtree(job.dir)
        return job


def _phase_or_wall(job: Job, name: str, wall: str, notes: list[str]) -> float:
    value = phase_total(job.phases, name)
    if value is None:
        note = f"scale: ci-cache reported no phases.{name}; used the wall time of `{wall}` instead"
        if note not in notes:
            notes.append(note)
        return job.phases[wall]
    return value


def seed_scope(data: Mapping[str, Any]) -> str:
    """What ci-cache said its uv seed covered (`seeded.uv.scope`), or "" if it did not say."""
    seeded = data.get("seeded")
    uv = seeded.get("uv") if isinstance(seeded, dict) else None
    scope = uv.get("scope") if isinstance(uv, dict) else None
    return str(scope) if scope is not None else ""


def _fill(cli: _Cli, names: list[str]) -> Path:
    """Install `names` into the shared cache through a `--mode shared` job; returns that cache."""
    job, _ = cli.begin("shared", {}, None)
    cli.install(job, names)
    cli.end(job)
    if job.cache is None:
        raise JobError("ci-cache setup --mode shared named no uv cache")
    return job.cache


def _overhead_jobs(cli: _Cli, result: ScaleResult, names: list[str], repeats: int, notes: list[str]) -> None:
    for _ in range(repeats):
        job = cli.run_job(names)
        command = phase_total(job.phases, "command")
        if command is None:
            notes.append("scale: ci-cache run reported no phases.command; the 10% job's overhead is not measured")
            return
        result.job_wall.append(job.phases["wrapped"])
        result.job_command.append(command)
        result.job_overhead.append(job.phases["wrapped"] - command)


@contextmanager
def _filled(plan: ScalePlan, setup: Setup, home: Path, work: Path, *, name: str, result: ScaleResult
            ) -> Iterator[tuple[_Cli, Path]]:
    """A fresh root whose shared cache holds `plan`'s packages; yields a job runner and that uv cache.

    Records the cache's size and how long building the index and filling the cache took."""
    index_root = home / "bench-scale" / f"{plan.packages}x{FILES_PER_PACKAGE}"
    t0 = time.perf_counter()
    if ensure_index(index_root, plan.specs()):
        print(f"bench: {name}: built {plan.packages} packages into {index_root} "
              f"in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    root = work / f"{name}-root"
    try:
        with index.serve(index_root, simple_max_age=0) as srv:
            cli = _Cli(replace(setup, index_url=srv.url), root, work / f"{name}-jobs")
            print(f"bench: {name}: filling the shared cache with {plan.packages} packages", file=sys.stderr)
            shared_uv = _fill(cli, plan.base_names())
            result.build_s = time.perf_counter() - t0
            result.cache_files = jobs.count_files(shared_uv)
            print(f"bench: {name}: {result.cache_files} files ready in {result.build_s:.0f} s", file=sys.stderr)
            yield cli, shared_uv
    finally:
        jobs.rmtree(root)


def run(plan: ScalePlan, setup: Setup, home: Path, work: Path, notes: list[str]) -> ScaleResult:
    result = ScaleResult(packages=plan.packages, keyed_fraction=1.0 / plan.keyed_every)
    with _filled(plan, setup, home, work, name="scale", result=result) as (cli, shared_uv):
        if floor.available():
            copies = floor.measure(shared_uv, work / "scale-floor", plan.repeats, floor.flags(plan.copy_floor))
            result.cp_al, result.cp_a = copies["cp -al"], copies.get("cp -a", [])
        # Seeds, each from nothing: without the pool of warm job caches, the second seed of a scope would be a
        # refresh of the first one's cache, and P4a, P4b and G2 compare ways of seeding.
        never = {"CI_CACHE_MERGE": "never", "CI_CACHE_POOL_SIZE": "0"}
        for _ in range(plan.repeats):
            job, _ = cli.begin("isolated", never, None)
            cli.end(job)
            result.seed_full.append(_phase_or_wall(job, "seed", "setup", notes))
            job, _ = cli.begin("isolated", never, plan.job_names(), key_files=True)
            cli.end(job)
            result.seed_keyed.append(_phase_or_wall(job, "seed", "setup", notes))
            job, data = cli.begin("isolated", never, plan.job_names())
            data = {**cli.end(job), **data}
            result.seed_detected.append(_phase_or_wall(job, "seed", "setup", notes))
            result.seed_detected_scope = seed_scope(data)
        deltas: list[int] = []
        for r in range(plan.repeats):
            job, _ = cli.begin("isolated", {}, plan.new_names(r), key_files=True)
            cli.install(job, plan.new_names(r))
            before = jobs.count_files(shared_uv)
            cli.end(job)
            deltas.append(jobs.count_files(shared_uv) - before)
            result.merge.append(_phase_or_wall(job, "merge", "finish", notes))
        result.merge_new_files = int(statistics.median(deltas))
        _overhead_jobs(cli, result, plan.job_names(), plan.repeats, notes)
    return result


def run_big(plan: ScalePlan, setup: Setup, home: Path, work: Path, notes: list[str]) -> ScaleResult:
    """The 10% job of `plan` against a shared cache of `plan.big()`: only its per-job overhead."""
    big = plan.big()
    result = ScaleResult(packages=big.packages, keyed_fraction=len(plan.job_names()) / big.packages)
    with _filled(big, setup, home, work, name="big-scale", result=result) as (cli, _shared_uv):
        _overhead_jobs(cli, result, plan.job_names(), plan.repeats, notes)
    return result
