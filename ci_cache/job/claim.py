"""The job's lease, one owner per allocation: taken at setup, taken over at finish, given back after."""

from __future__ import annotations

import contextlib

from ci_cache import faults, fsops, lease, locks, log, osapi, rootlayout
from ci_cache.errors import CiCacheError, JobBusy
from ci_cache.job import release
from ci_cache.job.context import Allocation, Context

# How long finish waits for setup's lease holder to let go after being told to stop.
LEASE_HANDOVER_TIMEOUT = 30.0


# How long giving the lease back tries to delete its file while another process has it open (Windows);
# after that the file stays for gc, which deletes lease files that nobody holds.
LEASE_FILE_BUDGET = fsops.RetryBudget(attempts=4, first_delay=0.02, max_delay=0.2)


def claim(ctx: Context, alloc: Allocation, *, in_process: bool,
          layout_hold: osapi.FileLockHandle | None = None) -> int | None:
    """Take the job's lease; returns the pid of setup's lease holder (None for `run`, which holds it itself).

    Taking it is one non-blocking OS lock, so of two setups of one id started at the same instant exactly
    one wins; the other fails with JobBusy before it touches anything. The root's layout stays held
    (shared) for as long as the lease: by `run` itself (`layout_hold` goes with the lease), or by the holder.
    """
    store, key = ctx.store, alloc.key
    holder_pid = None
    try:
        if in_process:
            alloc.lease = locks.try_lock(store.lease(key))
            if alloc.lease is not None and layout_hold is not None:
                alloc.lease.hold_also(layout_hold)
        else:
            with contextlib.suppress(lease.LeaseTaken):
                holder_pid = lease.start_holder(store.lease(key), ctx.config.lease_ttl, ctx.env,
                                                also_shared=[store.layout_lock])
    except OSError as exc:
        raise faults.store_error(exc, ctx.root, f"could not take the lease {store.lease(key)}") from exc
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
    if release.leftovers(store, alloc.key):
        log.info(f"reclaiming the dir of an earlier, dead run of job {alloc.job!r}")
        release.remove_job(store, alloc.key)


def take_over(ctx: Context, holder_pid: object) -> osapi.FileLockHandle:
    """Stop setup's lease holder and hold the lease (and the root's layout) here instead."""
    layout_hold = rootlayout.use(ctx.store, timeout=ctx.config.lock_timeout)
    try:
        pid = holder_pid if isinstance(holder_pid, int) else None
        handle = lease.stop_holder(pid, ctx.store.lease(ctx.key), timeout=LEASE_HANDOVER_TIMEOUT)
    except BaseException:
        layout_hold.release()
        raise
    handle.hold_also(layout_hold)
    return handle


def give_back(ctx: Context, handle: osapi.FileLockHandle) -> None:
    """Release the lease, then delete its file: Windows cannot delete an open file, so it goes after.

    Another process may have the file open at that moment (a `status` or a setup looking at it): then the
    file stays for gc, and the next lock of it checks that it locked the file the name still names
    (`osapi.try_lock`).
    """
    handle.release()
    try:
        fsops.unlink(ctx.store.lease(ctx.key), budget=LEASE_FILE_BUDGET)
    except (OSError, CiCacheError) as exc:
        log.info(f"the lease file stays for gc: {exc}")


def undo(ctx: Context, alloc: Allocation, holder_pid: int | None) -> None:
    """A failed setup leaves nothing behind: the finish that may follow it has nothing of its own to find."""
    # setup's own layout hold is still on: stopping the holder needs no other
    pid = holder_pid if isinstance(holder_pid, int) else None
    handle = alloc.lease or lease.stop_holder(pid, ctx.store.lease(ctx.key), timeout=LEASE_HANDOVER_TIMEOUT)
    alloc.lease = None
    with contextlib.suppress(OSError, CiCacheError):  # what is left, gc reclaims: the lease is free
        release.remove_job(ctx.store, alloc.key)
    with contextlib.suppress(OSError, CiCacheError):
        give_back(ctx, handle)
