"""Waiting for OS file locks: try without waiting first, say what we wait for, give up on time."""

from __future__ import annotations

import time
from pathlib import Path

from ci_cache import log, osapi
from ci_cache.errors import LockTimeout

POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5


def acquire(path: Path, *, timeout: float, shared: bool = False, purpose: str = "") -> tuple[
    osapi.FileLockHandle, float
]:
    """Take the lock at `path`; returns the handle and the seconds spent waiting.

    Only says "waiting for lock" when the first non-blocking try fails, so the common case is silent.
    """
    handle = osapi.try_lock(path, shared=shared)
    if handle is not None:
        return handle, 0.0
    what = f" ({purpose})" if purpose else ""
    log.info(f"waiting for lock {path}{what}, up to {timeout:g}s")
    start = time.monotonic()
    delay = POLL_SECONDS
    while True:
        time.sleep(delay)
        handle = osapi.try_lock(path, shared=shared)
        waited = time.monotonic() - start
        if handle is not None:
            log.info(f"got lock {path} after {waited:.1f}s")
            return handle, waited
        if waited >= timeout:
            raise LockTimeout(
                f"timed out after {timeout:g}s waiting for lock {path}{what}",
                hint="another job holds it; raise lock_timeout in ci-cache.yml (CI_CACHE_LOCK_TIMEOUT) "
                "or run `ci-cache status` to see who",
            )
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
