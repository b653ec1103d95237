"""Reclaiming what jobs left: dirs that finish could not move away, dirs of dead jobs (their lease free),
and leftover temp dirs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from ci_cache import fsops, jobdirs, lease, log, osapi, pool
from ci_cache.errors import CiCacheError
from ci_cache.store import Store, write_lock_of


class GcReport:
    def __init__(self) -> None:
        self.reclaimed_jobs: list[str] = []  # dead jobs, past the grace period
        self.reclaimed_finished: list[str] = []  # dirs finish could not move away
        self.reclaimed_temp: list[str] = []
        self.live_jobs: list[str] = []
        self.reclaimed_pool: list[str] = []  # warm job caches past pool.max_age (`ci_cache.pool`)
        self.bytes_freed = 0


def job_age(store: Store, key: str, now: float, dirs: list[Path] | None = None) -> float:
    """Seconds since the job's newest trace (record, lease or dir) changed."""
    newest = 0.0
    names = jobdirs.listing(store)
    if dirs is None:
        dirs = jobdirs.dirs_of(store, key, names)
    for path in (*map(jobdirs.record_of, jobdirs.record_dirs(store, key, names)), store.lease(key), *dirs):
        try:
            newest = max(newest, os.lstat(path).st_mtime)
        except OSError:
            continue
    return now - newest


def collect(store: Store, *, grace: float, now: float | None = None, background: bool = False,
            env: Mapping[str, str] | None = None, pool_max_age: float | None = None) -> GcReport:
    """Reclaim the dirs of finished jobs that finish could not move away, at once; dead jobs older than
    `grace`; temp dirs nobody can be writing; and with `pool_max_age`, the pool's job caches older than it
    (`ci_cache.pool`).

    A live job (its lease held by a running process) is never touched, whatever its age. `background`
    (the gc a job's setup runs): dirs are moved away and deleted by a detached process, as finish does,
    so that no job waits for them; otherwise (`ci-cache gc`) deleted here, and their bytes counted.
    """
    now = time.time() if now is None else now
    report = GcReport()
    names = jobdirs.listing(store)
    for key in store.job_keys():
        dirs = jobdirs.dirs_of(store, key, names)
        finished = [store.jobs_dir / m.removesuffix(jobdirs.FINISHED_SUFFIX) for m in jobdirs.marks(key, names)]
        for job_dir in [d for d in dirs if d in finished]:
            dirs.remove(job_dir)  # a finished job's: no grace, whoever holds the id's lease now
            if _reclaim(job_dir, report, background=background, env=env):
                report.reclaimed_finished.append(str(job_dir))
        _drop_finished_traces(finished, background=background)
        records = [jobdirs.record_of(d) for d in jobdirs.record_dirs(store, key, names, unfinished=True)]
        lease_path = store.lease(key)
        handle = osapi.try_lock(lease_path) if lease_path.exists() else None
        if lease_path.exists() and handle is None:
            report.live_jobs.append(key)
            continue
        try:
            # A lease file alone is no job: what give_back could not delete (a scan held it). It goes now.
            gone = not dirs and not records
            if not gone and job_age(store, key, now, dirs) >= grace:
                gone = all([_reclaim(d, report, background=background, env=env) for d in dirs])
                if gone:
                    for record in records:
                        _delete_trace(record, background=background)
                    report.reclaimed_jobs.append(key)
        finally:
            if handle is not None:
                handle.release()
        if gone and handle is not None:  # Windows cannot delete an open file: it goes after its release
            _delete_trace(lease_path, background=background)
    report.reclaimed_temp = reclaim_temp_dirs(store, grace=grace, now=now) + reclaim_trash(
        store, names, now=now, quiet=min(TRASH_QUIET_SECONDS, grace), background=background, env=env)
    if pool_max_age is not None:
        report.reclaimed_pool = pool.reclaim(store, max_age=pool_max_age, now=now, env=env)
    return report


def _reclaim(job_dir: Path, report: GcReport, *, background: bool, env: Mapping[str, str] | None) -> bool:
    """Delete a dir nobody uses: moved away for a detached delete, or here; False when it is still held."""
    if background:
        return jobdirs.discard(job_dir, env) is not None
    _, size = fsops.tree_size(job_dir)
    try:
        fsops.rmtree(job_dir)
    except CiCacheError as exc:
        log.info(f"gc: {job_dir} is still held ({jobdirs.why_not(exc)}); a later gc deletes it")
        return False
    report.bytes_freed += size
    return True


def _drop_finished_traces(finished: list[Path], *, background: bool) -> None:
    """The marks of finished jobs whose dir is gone, and their records (finish could not delete a record a
    scan held). The gc of a setup waits for no file: what is held now goes next time."""
    for job_dir in finished:
        if not os.path.lexists(job_dir):
            for path in (jobdirs.record_of(job_dir), jobdirs.finished_mark(job_dir)):
                _delete_trace(path, background=background)


def _delete_trace(path: Path, *, background: bool) -> None:
    with contextlib.suppress(OSError, CiCacheError):
        if background:
            jobdirs.try_delete(path)
        else:
            fsops.unlink(path)


# A background delete changes its dir's mtime with every entry it removes: one that changed this
# recently may still be being deleted, and is left to it (a shorter grace, as in `gc --grace 0s`, wins).
TRASH_QUIET_SECONDS = 60.0


def reclaim_trash(store: Store, names: list[str] | None = None, *, now: float, quiet: float = TRASH_QUIET_SECONDS,
                  background: bool = False, env: Mapping[str, str] | None = None) -> list[str]:
    """Job dirs moved away for a background delete that did not complete (a file was held, or it died)."""
    reclaimed: list[str] = []
    for path in jobdirs.trash(store, jobdirs.listing(store) if names is None else names):
        try:
            is_quiet = now - os.lstat(path).st_mtime >= quiet
        except FileNotFoundError:
            continue  # its delete has just finished
        if not is_quiet:
            continue
        if not path.is_dir():  # a file left for gc (a probe a scanner held): one unlink, no process for it
            with contextlib.suppress(OSError, CiCacheError):
                fsops.unlink(path)
                reclaimed.append(str(path))
            continue
        if background:
            if osapi.start_background_delete(path, env):
                reclaimed.append(str(path))
            continue
        try:
            fsops.rmtree(path)
        except CiCacheError as exc:
            log.info(f"gc: {path} is still held ({jobdirs.why_not(exc)}); a later gc deletes it")
            continue
        reclaimed.append(str(path))
    return reclaimed


def reclaim_temp_dirs(store: Store, *, grace: float, now: float) -> list[str]:
    """Temp dirs of interrupted merges (ours) and of killed tool processes (uv's `.tmp<random>`)."""
    reclaimed: list[str] = []
    from ci_cache.tools import BUILTINS  # only when collecting: setup's hot path rarely gets here

    for tool in store.shared_tools():
        own_lock = BUILTINS[tool]().own_lock if tool in BUILTINS else None
        with leftover_temp_dirs(store.shared_cache(tool), grace=grace, now=now, own_lock=own_lock) as leftovers:
            for leftover in leftovers:
                if leftover.reclaimable:
                    fsops.rmtree(leftover.path)
                    reclaimed.append(str(leftover.path))
    return reclaimed


class Leftover(NamedTuple):
    path: Path
    reclaimable: bool  # nobody can be writing it


@contextlib.contextmanager
def leftover_temp_dirs(cache: Path, *, grace: float, now: float, own_lock: str | None,
                       read_only: bool = False) -> Iterator[list[Leftover]]:
    """The temp dirs at a shared cache's root and one level into each bucket (where merges stage).

    Ours are reclaimable when nobody holds the cache's writer lock; any are once they are older than the
    grace period, a tool's only while none of its commands holds the tool's `own_lock`. The writer lock
    (and the tool's), when it was free, stays held while the block runs, so that no merge (or command of
    the tool) starts meanwhile.
    `read_only` (verify, which may look at a cache outside any root) creates no lock file: where there is
    none yet, a writer is assumed.
    """
    lock = write_lock_of(cache)
    try:
        writer = None if read_only and not lock.exists() else osapi.try_lock(lock)
    except OSError:
        writer = None  # the lock file cannot be opened here: assume a writer
    # A tool like uv holds its own lock shared for each command's whole life: while anyone holds it, a
    # temp dir of the tool's may be in use however old it is (found by the soak: gc deleted the interpreter
    # probe a running `uv pip install` had just written); while we hold it, no command of the tool starts.
    tool_lock = cache / own_lock if own_lock else None
    try:
        idle = osapi.try_lock(tool_lock) if tool_lock is not None and tool_lock.exists() else None
    except OSError:
        idle = None
    tool_running = idle is None and tool_lock is not None and tool_lock.exists()
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
                  env: Mapping[str, str] | None = None, pool_max_age: float | None = None) -> GcReport | None:
    """The cheap, rate-limited gc that setup runs: at most once per `interval` per root. It deletes nothing
    itself: dirs go to detached deletes, so that the job does not wait."""
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
        fsops.touch(stamp)
        report = collect(store, grace=grace, background=True, env=env, pool_max_age=pool_max_age)
    finally:
        held.release()
    if report.reclaimed_jobs or report.reclaimed_finished:
        log.info(f"gc: reclaiming {len(report.reclaimed_jobs)} dead job dir(s) and "
                 f"{len(report.reclaimed_finished)} finished one(s) in the background")
    return report


__all__ = ["GcReport", "collect", "lease", "maybe_collect"]
