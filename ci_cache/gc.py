"""Reclaiming what crashed jobs left: job dirs whose lease nobody holds, and leftover temp dirs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ci_cache import fsops, lease, log, osapi, pool
from ci_cache.store import Store, write_lock_of
from ci_cache.tools.uv.layout import ROOT_LOCK


class GcReport:
    def __init__(self) -> None:
        self.reclaimed_jobs: list[str] = []
        self.reclaimed_temp: list[str] = []
        self.live_jobs: list[str] = []
        self.reclaimed_pool: list[str] = []
        self.bytes_freed = 0


def job_age(store: Store, key: str, now: float) -> float:
    """Seconds since the job's newest trace (record, lease or dir) changed."""
    newest = 0.0
    for path in (store.record(key), store.lease(key), store.job_dir(key)):
        try:
            newest = max(newest, os.lstat(path).st_mtime)
        except OSError:
            continue
    return now - newest


def collect(store: Store, *, grace: float, now: float | None = None, pool_max_age: float | None = None) -> GcReport:
    """Reclaim dead jobs older than `grace`, and temp dirs nobody can be writing; with `pool_max_age`, the
    pool's job caches older than it (`ci_cache.pool`).

    A live job (its lease held by a running process) is never touched, whatever its age.
    """
    now = time.time() if now is None else now
    report = GcReport()
    for key in store.job_keys():
        lease_path = store.lease(key)
        handle = osapi.try_lock(lease_path) if lease_path.exists() else None
        if lease_path.exists() and handle is None:
            report.live_jobs.append(key)
            continue
        try:
            if job_age(store, key, now) < grace:
                continue
            _, size = fsops.tree_size(store.job_dir(key))
            fsops.rmtree(store.job_dir(key))
            fsops.unlink(store.record(key))
            report.reclaimed_jobs.append(key)
            report.bytes_freed += size
        finally:
            if handle is not None:
                handle.release()
                # Windows cannot delete an open file, so the lease file goes after its release.
                if key in report.reclaimed_jobs:
                    fsops.unlink(lease_path)
    report.reclaimed_temp = reclaim_temp_dirs(store, grace=grace, now=now) + reclaim_trash(store, now=now)
    if pool_max_age is not None:
        report.reclaimed_pool = pool.reclaim(store, max_age=pool_max_age, now=now)
    return report


# A background delete changes its dir's mtime with every entry it removes; one this quiet has died.
TRASH_QUIET_SECONDS = 60.0


def reclaim_trash(store: Store, *, now: float) -> list[str]:
    """Job dirs that finish renamed away for a background delete that did not complete."""
    reclaimed: list[str] = []
    try:
        entries = [e for e in os.scandir(store.jobs_dir) if e.name.startswith(fsops.TEMP_PREFIX)]
    except FileNotFoundError:
        return reclaimed
    for entry in entries:
        try:
            quiet = now - entry.stat(follow_symlinks=False).st_mtime >= TRASH_QUIET_SECONDS
        except FileNotFoundError:
            continue  # its background delete (or another gc) finished it meanwhile
        if quiet:
            fsops.rmtree(Path(entry.path))
            reclaimed.append(entry.path)
    return reclaimed


def reclaim_temp_dirs(store: Store, *, grace: float, now: float) -> list[str]:
    """Temp dirs of interrupted merges (ours) and of killed tool processes (uv's `.tmp<random>`)."""
    reclaimed: list[str] = []
    for tool in store.shared_tools():
        with leftover_temp_dirs(store.shared_cache(tool), grace=grace, now=now) as leftovers:
            for leftover in leftovers:
                if leftover.reclaimable:
                    fsops.rmtree(leftover.path)
                    reclaimed.append(str(leftover.path))
    return reclaimed


class Leftover(NamedTuple):
    path: Path
    reclaimable: bool  # nobody can be writing it


@contextlib.contextmanager
def leftover_temp_dirs(cache: Path, *, grace: float, now: float,
                       read_only: bool = False) -> Iterator[list[Leftover]]:
    """The temp dirs at a shared cache's root and one level into each bucket (where merges stage).

    Ours are reclaimable when nobody holds the cache's writer lock; any are once they are older than
    the grace period, uv's only while no uv command holds its root lock. The writer lock (and uv's), when
    it was free, stays held while the block runs, so that no merge (or uv command) starts meanwhile.
    `read_only` (verify, which may look at a cache outside any root) creates no lock file: where there is
    none yet, a writer is assumed.
    """
    lock = write_lock_of(cache)
    try:
        writer = None if read_only and not lock.exists() else osapi.try_lock(lock)
    except OSError:
        writer = None  # the lock file cannot be opened here: assume a writer
    # uv holds its root lock shared for each command's whole life: while anyone holds it, a temp dir of
    # uv's may be in use however old it is (found by the soak: gc deleted the interpreter probe a running
    # `uv pip install` had just written); while we hold it, no uv command starts.
    tool_lock = cache / ROOT_LOCK
    try:
        idle = osapi.try_lock(tool_lock) if tool_lock.exists() else None
    except OSError:
        idle = None
    tool_running = idle is None and tool_lock.exists()
    try:
        found = []
        for path in _temp_dirs(cache):
            ours = path.name.startswith(fsops.TEMP_PREFIX)
            try:
                old = now - os.lstat(path).st_mtime >= grace
            except FileNotFoundError:
                continue  # renamed into place (uv's temp dirs are) or deleted meanwhile: not left over
            reclaimable = (writer is not None or old) if ours else (old and not tool_running)
            found.append(Leftover(path, reclaimable))
        yield found
    finally:
        if idle is not None:
            idle.release()
        if writer is not None:
            writer.release()


def _temp_dirs(cache: Path) -> list[Path]:
    """`.tmp*` entries at the cache root and one level into each bucket."""
    found: list[Path] = []
    try:
        top = list(os.scandir(cache))
    except FileNotFoundError:
        return found
    for entry in top:
        if fsops.is_temp_name(entry.name):
            found.append(Path(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):  # a temp dir of uv's at the top, renamed meanwhile
                found.extend(Path(e.path) for e in os.scandir(entry.path) if fsops.is_temp_name(e.name))
    return found


def maybe_collect(store: Store, *, grace: float, interval: float,
                  pool_max_age: float | None = None) -> GcReport | None:
    """The cheap, rate-limited gc that setup runs: at most once per `interval` per root."""
    stamp = store.gc_stamp
    try:
        if time.time() - os.stat(stamp).st_mtime < interval:
            return None
    except FileNotFoundError:
        pass
    held = osapi.try_lock(stamp)
    if held is None:
        return None  # another job is collecting right now
    try:
        os.utime(stamp)
        report = collect(store, grace=grace, pool_max_age=pool_max_age)
    finally:
        held.release()
    if report.reclaimed_jobs:
        log.info(f"gc: reclaimed {len(report.reclaimed_jobs)} dead job dir(s)")
    return report


__all__ = ["GcReport", "collect", "lease", "maybe_collect"]
