"""A job's lease: an OS file lock held while the job lives, so a crashed job is recognisably stale.

`run` holds the lease itself. `setup` returns before the job's commands run, so it starts a small
detached holder process that keeps the lease until `finish` stops it, or until the lease's time to
live runs out. The holder is `oslock` run alone (`python -I -S`), which imports nothing but what holding
an OS lock needs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_cache import faults, fsops, locks, osapi, oslock
from ci_cache.errors import StoreError

HANDOVER_QUIET_SECONDS = 5.0


def is_held(lease_path: Path) -> bool:
    """True when some live process holds the lease."""
    if not lease_path.exists():
        return False
    handle = locks.try_lock(lease_path)
    if handle is None:
        return True
    handle.release()
    return False


def take(lease_path: Path, *, timeout: float) -> osapi.FileLockHandle:
    handle, _waited = locks.acquire(lease_path, timeout=timeout, purpose="job lease")
    return handle


class LeaseTaken(Exception):
    """Another process holds the lease: the job is set up and alive elsewhere."""


def start_holder(lease_path: Path, ttl: float, env: Mapping[str, str], *, also_shared: Sequence[Path] = ()) -> int:
    """Start a detached process that holds the lease; returns its pid once it holds it.

    Raises LeaseTaken when another process holds the lease already: the holder's own non-blocking lock
    is the one place that decides, so of two setups started at the same instant exactly one gets it.
    `also_shared`: locks the holder also holds shared for the job's life (the root's layout lock). A holder
    that fails on a transient error (a scanner holding a lock file) is started again, as fsops retries any
    other file operation.
    """
    try:
        return fsops.with_retry(lambda: _start_once(lease_path, ttl, env, also_shared),
                                f"start the lease holder for {lease_path}")
    except OSError as exc:
        fault = faults.explain(exc, lease_path.parent.parent)  # <root>/jobs/<key>.lease
        raise StoreError(f"could not start the lease holder for {lease_path}: {fault.cause}", hint=fault.hint) from exc


def _start_once(lease_path: Path, ttl: float, env: Mapping[str, str], also_shared: Sequence[Path]) -> int:
    """One holder: its pid once it holds the lease; LeaseTaken, or the OSError it met (errno and winerror)."""
    # -I -S: no site, no user site, no PYTHON* variables; oslock imports nothing of ci-cache. It must outlive
    # the setup step: a detached helper.
    pid, line = osapi.spawn_detached(
        [sys.executable, "-I", "-S", oslock.__file__, oslock.HOLDER_TAG, str(lease_path), str(ttl),
         *map(str, also_shared)], env, first_line=True)
    if line == oslock.BUSY:
        osapi.reap(pid)
        raise LeaseTaken(str(lease_path))
    if line != oslock.READY:
        osapi.reap(pid, kill=True)
        if line.startswith(oslock.FAILED):
            # The holder could not open or lock its files: say why (a full disk, a file in the way, ...).
            words = line[len(oslock.FAILED):].decode(errors="replace").strip().split(" ", 2)
            code, winerror, text = [*words, "", ""][:3]
            raise OSError(int(code) if code.isdigit() else 0, text or "unknown error", str(lease_path),
                          int(winerror) if winerror.isdigit() and int(winerror) else None)
        raise StoreError(f"could not start the lease holder for {lease_path} (it exited without a word)",
                         hint="run `ci-cache doctor` to check the root")
    return pid


def stop_holder(pid: int | None, lease_path: Path, *, timeout: float) -> osapi.FileLockHandle:
    """Stop the holder started by setup and take the lease over."""
    if pid and osapi.pid_alive(pid):
        osapi.terminate(pid)
    # The holder lets go within moments of being told: wait quietly for that before saying anything.
    deadline = time.monotonic() + HANDOVER_QUIET_SECONDS
    while time.monotonic() < deadline:
        handle = locks.try_lock(lease_path)
        if handle is not None:
            return handle
        time.sleep(0.02)
    return take(lease_path, timeout=timeout)
