"""Removing a job's traces: its dir out of the way at once (deleted in the background), then its record."""

from __future__ import annotations

from pathlib import Path

from ci_cache import fsops, osapi
from ci_cache.errors import CiCacheError
from ci_cache.store import Store


def remove_job(store: Store, key: str) -> None:
    """The job's dir and record; its lease is the caller's to give back."""
    release_dir(store.job_dir(key))
    fsops.unlink(store.record(key))


def release_dir(job_dir: Path) -> None:
    """Take the job's dir out of the way at once and delete it in the background.

    Deleting tens of thousands of links takes as long as making them; the job need not wait for it.
    The dir is first renamed to a temp name (instant), so a later job with the same id starts clean;
    if the background delete dies, `gc` reclaims the temp dir.
    """
    if not job_dir.exists():
        return
    try:
        trash = fsops.rename_away(job_dir)
    except (OSError, CiCacheError):
        fsops.rmtree(job_dir)  # cannot rename (a file held open on Windows): delete here, with retries
        return
    if not osapi.start_background_delete(trash):
        fsops.rmtree(trash)
