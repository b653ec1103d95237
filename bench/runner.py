"""Running waves of N concurrent jobs under one strategy, and the untimed disk probe."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import jobs
from bench.jobs import Job, JobError, Setup
from bench.model import JobResult, Variant, Wave
from bench.strategies import Strategy

_ids = itertools.count(1)


@dataclass
class Bed:
    """One variant's strategy, state and scratch space, kept across its waves so later waves are warm."""

    strategy: Strategy
    variant: Variant
    state: Path
    scratch: Path
    setup: Setup

    def prepare(self) -> None:
        jobs.rmtree(self.state)
        self.strategy.prepare(self.state, self.setup)
        self.scratch.mkdir(parents=True, exist_ok=True)

    def new_job(self) -> Job:
        # Short ids keep Windows paths short and never repeat within a run.
        job_id = f"b{next(_ids)}"
        job_dir = self.scratch / job_id
        job_dir.mkdir(parents=True)
        return Job(id=job_id, dir=job_dir, state=self.state, link_mode=self.variant.link_mode)


def _run_job(bed: Bed, job: Job) -> JobResult:
    """begin, install, end; a failure anywhere is recorded, and `end` still runs after a failed install."""
    t0 = time.perf_counter()
    error = ""
    begun = False
    # Anything a job raises is its failure, recorded with the wave; it must not kill the thread and
    # leave the wave without an end time.
    try:
        env = bed.strategy.begin(job, bed.setup)
        begun = True
        jobs.install(bed.setup, job, env, bed.strategy.command_prefix(job, bed.setup))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if begun:
        try:
            bed.strategy.end(job, bed.setup, not error)
        except Exception as exc:
            error = error or f"{type(exc).__name__}: {exc}"
    return JobResult(job.id, time.perf_counter() - t0, not error, dict(job.phases), dict(job.info), error)


def run_wave(bed: Bed, n: int, *, warm: bool, repeat: int) -> Wave:
    """Start n jobs at once; the makespan runs from the first start to the last end."""
    wave_jobs = [bed.new_job() for _ in range(n)]
    results: list[JobResult | None] = [None] * n
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * n
    gate = threading.Barrier(n)

    def worker(i: int) -> None:
        gate.wait()
        start = time.perf_counter()
        results[i] = _run_job(bed, wave_jobs[i])
        spans[i] = (start, time.perf_counter())

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-job-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    makespan = max(end for _, end in spans) - min(start for start, _ in spans)
    done = [r for r in results if r is not None]
    for job in wave_jobs:
        jobs.rmtree(job.dir)  # untimed: a CI workspace is wiped outside the job
    # Untimed too: write back what this wave wrote and deleted (on a disk mounted with `discard`, the
    # deletes' discards go out with the journal), so the next wave, of whatever variant, does not pay it.
    jobs.sync()
    wave = Wave(bed.variant.key, n, warm, repeat, makespan, done)
    for r in done:
        if not r.ok:
            print(f"bench: {bed.variant.key} job {r.job} failed: {r.error}", file=sys.stderr)
    return wave


def probe_disk(bed: Bed) -> dict[str, int]:
    """One untimed warm job, measured before `end` releases it: what it costs on disk.

    `job_private` counts the job cache's bytes that are not hardlinks of the shared store; `shared` is
    the store itself (cache folder or archive) afterwards; `venv` is what the install put in the venv.
    """
    job = bed.new_job()
    strategy = bed.strategy.probe()
    shared_paths = strategy.shared(bed.state)
    out: dict[str, int] = {}
    try:
        env = strategy.begin(job, bed.setup)
        jobs.install(bed.setup, job, env, strategy.command_prefix(job, bed.setup))
        shared_inodes = jobs.inodes(shared_paths)
        cache = [job.cache] if job.cache is not None else []
        out["job_private"] = jobs.disk_bytes(cache, shared_inodes)
        out["venv"] = jobs.disk_bytes([job.venv], shared_inodes | jobs.inodes(cache))
        strategy.end(job, bed.setup, True)
        out["shared"] = jobs.disk_bytes(shared_paths)
    except (JobError, OSError) as exc:
        print(f"bench: disk probe of {bed.variant.key} failed: {exc}", file=sys.stderr)
    finally:
        jobs.rmtree(job.dir)
    return out
