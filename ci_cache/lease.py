"""A job's lease: an OS file lock held while the job lives, so a crashed job is recognisably stale.

`run` holds the lease itself. `setup` returns before the job's commands run, so it starts a small
detached holder process that keeps the lease until `finish` stops it, or until the lease's time to
live runs out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_cache import faults, locks, osapi
from ci_cache.errors import StoreError

READY = b"ready\n"
BUSY = b"busy\n"
FAILED = b"failed "
HANDOVER_QUIET_SECONDS = 5.0
HOLDER_POLL_SECONDS = 5.0


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
    `also_shared`: locks the holder also holds shared for the job's life (the root's layout lock).
    """
    child_env = osapi.outliving_env(env)  # it must outlive the setup step
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_cache.lease", str(lease_path), str(ttl), *map(str, also_shared)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=child_env,
        **osapi.detached_popen_kwargs(),  # type: ignore[call-overload]
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    if line == BUSY:
        proc.wait()
        raise LeaseTaken(str(lease_path))
    if line != READY:
        proc.kill()
        proc.wait()
        if line.startswith(FAILED):
            # The holder could not open or lock its files: say why (a full disk, a file in the way, ...).
            code, _, text = line[len(FAILED):].decode(errors="replace").strip().partition(" ")
            error = OSError(int(code) if code.isdigit() else 0, text or "unknown error", str(lease_path))
            fault = faults.explain(error, lease_path.parent.parent)  # <root>/jobs/<key>.lease
            raise StoreError(f"could not start the lease holder for {lease_path}: {fault.cause}", hint=fault.hint)
        raise StoreError(f"could not start the lease holder for {lease_path} (it exited without a word)",
                         hint="run `ci-cache doctor` to check the root")
    return int(proc.pid)


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


def _hold(lease_path: Path, ttl: float, also_shared: Sequence[Path]) -> int:
    out = sys.stdout.buffer
    try:
        companions = [_shared(path) for path in also_shared]
        handle = locks.try_lock(lease_path)
    except (OSError, StoreError) as exc:  # StoreError: a file held past the retries
        words = f"{exc.errno or 0} {exc.strerror or exc}" if isinstance(exc, OSError) else f"0 {exc}"
        out.write(FAILED + words.replace("\n", " ").encode() + b"\n")
        out.flush()
        return 1
    if handle is None:
        out.write(BUSY)
        out.flush()
        return 1
    for companion in companions:
        handle.hold_also(companion)
    out.write(READY)
    out.flush()
    os.close(1)
    deadline = time.monotonic() + ttl
    # Also stop when the lease file is gone: its root was deleted, so nobody will ever finish the job.
    while time.monotonic() < deadline and lease_path.exists():
        time.sleep(min(HOLDER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    handle.release()
    return 0


def _shared(path: Path) -> osapi.FileLockHandle:
    handle = locks.try_lock(path, shared=True)
    if handle is None:  # setup holds it shared: only a migration's exclusive hold could be in the way
        raise OSError(0, f"{path} is held exclusive (a migration of the root is running)")
    return handle


if __name__ == "__main__":
    sys.exit(_hold(Path(sys.argv[1]), float(sys.argv[2]), [Path(p) for p in sys.argv[3:]]))
