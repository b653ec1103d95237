"""Removing a job's traces without the job waiting: its dir out of the way at once (deleted by a detached
process), then its record. What cannot go yet is marked finished for `gc` (`jobdirs`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from ci_cache import jobdirs, osapi
from ci_cache.errors import CiCacheError
from ci_cache.store import Store


class LeftForGc(NamedTuple):
    """A finished job's dir that could not be moved away, and why: it stays, marked finished, for gc."""

    job_dir: Path
    reason: str
    held: bool  # held open by another process (a scan, Windows): expected, no fault of the job's


def release_dir(store: Store, key: str, job_dir: Path, env: Mapping[str, str] | None) -> LeftForGc | None:
    """Take a finished job's dir out of the way and drop its record; the lease is the caller's to give back.

    When the dir cannot be moved (a file in it held open, as scanners do on Windows), it stays where it
    is, its record renamed to say the job finished, and a detached process deletes what it can of it now;
    `gc` (that of the next job's setup, too) reclaims the rest once it is let go. Nothing waits.
    """
    record = jobdirs.record_of(job_dir)
    if not job_dir.exists():
        jobdirs.drop_record(record, job_dir)
        return None
    try:
        away = jobdirs.move_away(job_dir)
    except (OSError, CiCacheError) as exc:
        jobdirs.mark_finished(job_dir, record)
        osapi.start_background_delete(job_dir, env)  # all but the held files; the mark stays beside it
        # fsops says StoreError for the errors of a file held open; any other OSError is a fault.
        return LeftForGc(job_dir, jobdirs.why_not(exc), held=isinstance(exc, CiCacheError))
    osapi.start_background_delete(away, env)
    jobdirs.drop_record(record, job_dir)
    return None


def leftovers(store: Store, key: str) -> list[Path]:
    """The dirs and records of the job's allocations that are not marked finished: a dead or failed setup's."""
    names = jobdirs.listing(store)
    dirs = [d for d in jobdirs.dirs_of(store, key, names) if not jobdirs.is_finished(d, names)]
    return sorted({*dirs, *jobdirs.record_dirs(store, key, names, unfinished=True)})


def remove_job(store: Store, key: str, env: Mapping[str, str] | None = None) -> None:
    """Every allocation of the job but the finished ones (which `gc` reclaims): what a dead or a failed setup
    left. Nothing waits: each dir is moved away and deleted by a detached process, each record deleted in one
    attempt; what a scan holds is marked finished, for gc."""
    for job_dir in leftovers(store, key):
        if job_dir.is_dir() and jobdirs.discard(job_dir, env) is None:
            jobdirs.mark_finished(job_dir, jobdirs.record_of(job_dir))
        else:
            jobdirs.drop_record(jobdirs.record_of(job_dir), job_dir)
