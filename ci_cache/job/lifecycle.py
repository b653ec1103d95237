"""A job's two halves, each a pipeline of steps: setup = claim -> pull -> seed -> env; finish = merge -> prune
-> push -> release.

The steps live in their own modules (pull and push, the fleet tier's, in `job/remote.py`). Each half
imports its own steps when it runs: a `setup` process never loads the merge, nor a `finish` process the
seeding (every module is CPU that every job pays).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ci_cache import faults, jobdirs, log, osapi, rootlayout
from ci_cache.errors import CiCacheError, UsageError
from ci_cache.job import claim, release
from ci_cache.job.context import NO_TOKEN, TOKEN_VAR, Allocation, Context, FinishResult, effective_mode
from ci_cache.tools import from_config


def setup(ctx: Context, *, in_process: bool) -> Allocation:
    """Allocate the job's dir and lease, seed its caches, and work out its env.

    `in_process`: the caller (run) holds the lease itself; otherwise a detached holder does.
    """
    from ci_cache.job import env, record, remote, seed

    store = ctx.store
    mode, note = effective_mode(ctx)
    alloc = Allocation(job=ctx.identity.job_id, key=ctx.key, job_dir=store.job_dir(ctx.key), mode=mode)
    if note:
        alloc.warnings.append(note)
    if mode == "off":
        alloc.env[TOKEN_VAR] = NO_TOKEN
        return alloc
    layout_hold = rootlayout.open_root(store, timeout=ctx.config.lock_timeout)
    try:
        _gc_on_setup(ctx)
        token = os.urandom(16).hex()  # what secrets.token_hex does, without importing secrets
        holder_pid = claim.claim(ctx, alloc, in_process=in_process, layout_hold=layout_hold)
        try:
            claim.clear_dead_attempt(ctx, alloc)
            alloc.job_dir = jobdirs.new_dir(store, ctx.key)
            alloc.notes.update({"holder_pid": holder_pid, "token": token, "dir": str(alloc.job_dir)})
            tools = from_config(ctx.config)
            remote.pull(ctx, alloc, tools)
            seed.allocate(ctx, alloc, tools)
            env.export(ctx, alloc, tools, token=token, in_process=in_process)
            # Written once, when the job is ready: a scanner holds a file it has just seen for seconds, and
            # a second write (a rename over the first) would wait for it or fail. Until then the held lease
            # says the job is live; a dead attempt's dir, with no record, is the next setup's or gc's.
            record.write(ctx, alloc, status="ready", extra={**alloc.notes, "restore": env.previous(ctx, alloc)})
        except BaseException:
            claim.undo(ctx, alloc, holder_pid)
            raise
    except OSError as exc:
        raise faults.store_error(exc, ctx.root, f"setting up job {alloc.job!r} under {ctx.root} failed") from exc
    finally:
        if alloc.lease is None:
            layout_hold.release()  # the lease holder holds it now (or nothing does: the setup failed)
    return alloc


def setup_or_off(ctx: Context, *, in_process: bool) -> Allocation:
    """setup; or, where the job can safely go on without ci-cache, mode `off` with a warning that says why.

    Never `off` with --strict, nor on a usage error (a bad config, a busy job id): those fail the job.
    """
    try:
        return setup(ctx, in_process=in_process)
    except CiCacheError as exc:
        if ctx.strict or isinstance(exc, UsageError):
            raise
        return Allocation(job=ctx.identity.job_id, key=ctx.key, job_dir=Path(), mode="off",
                          env={TOKEN_VAR: NO_TOKEN}, warnings=[f"{exc}; the job runs without ci-cache"])


def _gc_on_setup(ctx: Context) -> None:
    if not ctx.config.gc.on_setup:
        return
    from ci_cache import gc

    try:
        gc.maybe_collect(ctx.store, grace=ctx.config.gc.grace, interval=ctx.config.gc.interval, env=ctx.env,
                         pool_max_age=ctx.config.pool.max_age)
    except (OSError, CiCacheError) as exc:
        log.warn(f"gc at setup failed, continuing: {exc}")


def finish(ctx: Context, status: str, *, held: osapi.FileLockHandle | None = None,
           token: str | None = None) -> FinishResult:
    """Merge and release the allocation that this job's own setup made, and nothing else (`owner`)."""
    from ci_cache.job import bound, merge, owner, remote

    found = owner.owned_record(ctx, held=held, token=token)
    mode = str(found.get("mode", "isolated"))
    result = FinishResult(job=ctx.identity.job_id, key=ctx.key, mode=mode, status=status, merge_decision="",
                          seeded=dict(found.get("seeded", {})), restore=dict(found.get("restore", {})))
    result.phases.update({k: float(v) for k, v in dict(found.get("phases", {})).items()})
    handle = held or claim.take_over(ctx, found.get("holder_pid"))
    job_dir = jobdirs.current(ctx.store, ctx.key, found)
    try:
        do_merge, result.merge_decision = merge.decision(ctx, mode, status)
        if do_merge:
            merge.merge_all(ctx, result, dict(found.get("caches", {})), job_dir)
            bound.prune_if_over(ctx, result)
        remote.push(ctx, result, found, status)
        _give_back(ctx, result, found)
        _cleanup(ctx, result, job_dir)
    finally:
        claim.give_back(ctx, handle)
    return result


def _give_back(ctx: Context, result: FinishResult, found: dict[str, Any]) -> None:
    """A trusted isolated job's seeded caches go to the pool, for the next job to refresh (`ci_cache.pool`).

    Not an untrusted job's (see `pool`), nor after a prune this finish ran: the pool would keep what it evicted.
    """
    tags, caches = found.get("pool"), found.get("caches")
    if result.mode != "isolated" or not ctx.identity.trusted or "prune" in result.phases:
        return
    if not isinstance(tags, dict) or not tags or not isinstance(caches, dict):
        return
    from ci_cache import pool

    for tool, tag in sorted(tags.items()):
        seeded = result.seeded.get(tool)
        if tool in caches and isinstance(seeded, dict) and "failed" not in seeded and pool.give_back(
                ctx.store, tool, str(tag), Path(caches[tool]), size=ctx.config.pool.size, env=ctx.env):
            result.pooled.append(tool)


def _cleanup(ctx: Context, result: FinishResult, job_dir: Path) -> None:
    """The job dir out of the way and deleted by a detached process: the job never waits for the delete.

    A dir held open by another process (a scan) stays for gc: said once in the summary, as a fact, not as
    a warning, since nothing is wrong with the job or the caches; any other failure is one warning.
    """
    started = time.monotonic()
    try:
        left = release.release_dir(ctx.store, ctx.key, job_dir, ctx.env)
    except (OSError, CiCacheError) as exc:
        left = release.LeftForGc(job_dir, jobdirs.why_not(exc), held=False)
    if left is not None:
        result.cleanup = {"left_for_gc": str(left.job_dir), "reason": left.reason}
        if not left.held:
            result.warnings.append(f"could not release the job dir {left.job_dir} ({left.reason}); "
                                   "`ci-cache gc` deletes it")
    result.phases["cleanup"] = round(time.monotonic() - started, 4)
