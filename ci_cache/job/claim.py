"""The job's lease, one owner per allocation: taken at setup, taken over at finish, given back after."""

from __future__ import annotations

import contextlib

from ci_cache import fsops, lease, log, osapi
from ci_cache.errors import CiCacheError, JobBusy
from ci_cache.job import release
from ci_cache.job.context import Allocation, Context

# How long finish waits for setup's lease holder to let go after being told to stop.
LEASE_HANDOVER_TIMEOUT = 30.0


def claim(ctx: Context, alloc: Allocation, *, in_process: bool) -> int | None:
    """Take the job's lease; returns the pid of setup's lease holder (None for `run`, which holds it itself).

    Taking it is one non-blocking OS lock, so of two setups of one id started at the same instant exactly
    one wins; the other fails with JobBusy before it touches anything.
    """
    store, key = ctx.store, alloc.key
    holder_pid = None
    if in_process:
        alloc.lease = osapi.try_lock(store.lease(key))
    else:
        with contextlib.suppress(lease.LeaseTaken):
            holder_pid = lease.start_holder(store.lease(key), ctx.config.lease_ttl, ctx.env)
    if alloc.lease is None and holder_pid is None:
        raise JobBusy(
            f"job {alloc.job!r} is already set up and still running: another setup or run holds its lease "
            f"{store.lease(key)}",
            hint="give each job its own id with --job / CI_CACHE_JOB, or run `ci-cache finish` for it first",
        )
    return holder_pid


def clear_dead_attempt(ctx: Context, alloc: Allocation) -> None:
    """The lease is ours now: whatever is left under this job's name is a dead attempt's."""
    store = ctx.store
    if store.job_dir(alloc.key).exists() or store.record(alloc.key).exists():
        log.info(f"reclaiming the dir of an earlier, dead run of job {alloc.job!r}")
        release.remove_job(store, alloc.key)


def take_over(ctx: Context, holder_pid: object) -> osapi.FileLockHandle:
    """Stop setup's lease holder and hold the lease here instead."""
    pid = holder_pid if isinstance(holder_pid, int) else None
    return lease.stop_holder(pid, ctx.store.lease(ctx.key), timeout=LEASE_HANDOVER_TIMEOUT)


def give_back(ctx: Context, handle: osapi.FileLockHandle) -> None:
    # Windows cannot delete an open file, so the lease file goes after its release.
    handle.release()
    fsops.unlink(ctx.store.lease(ctx.key))


def undo(ctx: Context, alloc: Allocation, holder_pid: int | None) -> None:
    """A failed setup leaves nothing behind: the finish that may follow it has nothing of its own to find."""
    handle = alloc.lease or take_over(ctx, holder_pid)
    alloc.lease = None
    with contextlib.suppress(OSError, CiCacheError):  # what is left, gc reclaims: the lease is free
        release.remove_job(ctx.store, alloc.key)
    with contextlib.suppress(OSError, CiCacheError):
        give_back(ctx, handle)
