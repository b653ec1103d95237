"""Waiting for OS file locks: try without waiting first, say what we wait for, give up on time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ci_cache import fsops, log, osapi
from ci_cache.errors import LockTimeout

POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.5


def try_lock(path: Path, *, shared: bool = False) -> osapi.FileLockHandle | None:
    """Take the lock at `path` without waiting (None when someone holds it); a transient error opening the
    lock file (a scanner holding it, a delete pending on Windows) is retried."""
    return fsops.with_retry(lambda: osapi.try_lock(path, shared=shared), f"open the lock file {path}")


def acquire(path: Path, *, timeout: float, shared: bool = False, purpose: str = "") -> tuple[
    osapi.FileLockHandle, float
]:
    """Take the lock at `path`; returns the handle and the seconds spent waiting.

    Only says "waiting for lock" when the first non-blocking try fails, so the common case is silent.
    """
    handle = try_lock(path, shared=shared)
    if handle is not None:
        return handle, 0.0
    what = f" ({purpose})" if purpose else ""
    log.info(f"waiting for lock {path}{what}, up to {timeout:g}s")
    start = time.monotonic()
    delay = POLL_SECONDS
    while True:
        time.sleep(delay)
        handle = try_lock(path, shared=shared)
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


class Holding:
    """A block that holds several locks, each `(path, purpose)`, taken in the order of their paths so that
    two holders of overlapping sets never deadlock. `waited` adds up the seconds spent waiting over every
    use (`runner.run` enters it once per attempt)."""

    def __init__(self, targets: Sequence[tuple[Path, str]], *, timeout: float) -> None:
        self.targets = sorted(targets)
        self.timeout = timeout
        self.waited = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for path, purpose in self.targets:
                handle, waited = acquire(path, timeout=self.timeout, purpose=purpose)
                self.waited += waited
                stack.enter_context(handle)
            yield
