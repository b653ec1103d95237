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
from collections.abc import Mapping
from pathlib import Path

from ci_cache import locks, osapi
from ci_cache.errors import StoreError

READY = b"ready\n"
BUSY = b"busy\n"
HANDOVER_QUIET_SECONDS = 5.0
HOLDER_POLL_SECONDS = 5.0


def is_held(lease_path: Path) -> bool:
    """True when some live process holds the lease."""
    if not lease_path.exists():
        return False
    handle = osapi.try_lock(lease_path)
    if handle is None:
        return True
    handle.release()
    return False


def take(lease_path: Path, *, timeout: float) -> osapi.FileLockHandle:
    handle, _waited = locks.acquire(lease_path, timeout=timeout, purpose="job lease")
    return handle


class LeaseTaken(Exception):
    """Another process holds the lease: the job is set up and alive elsewhere."""


def start_holder(lease_path: Path, ttl: float, env: Mapping[str, str]) -> int:
    """Start a detached process that holds the lease; returns its pid once it holds it.

    Raises LeaseTaken when another process holds the lease already: the holder's own non-blocking lock
    is the one place that decides, so of two setups started at the same instant exactly one gets it.
    """
    child_env = osapi.outliving_env(env)  # it must outlive the setup step
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_cache.lease", str(lease_path), str(ttl)],
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
        raise StoreError(f"could not start the lease holder for {lease_path}",
                         hint="run `ci-cache doctor` to check the root")
    return int(proc.pid)


def stop_holder(pid: int | None, lease_path: Path, *, timeout: float) -> osapi.FileLockHandle:
    """Stop the holder started by setup and take the lease over."""
    if pid and osapi.pid_alive(pid):
        osapi.terminate(pid)
    # The holder lets go within moments of being told: wait quietly for that before saying anything.
    deadline = time.monotonic() + HANDOVER_QUIET_SECONDS
    while time.monotonic() < deadline:
        handle = osapi.try_lock(lease_path)
        if handle is not None:
            return handle
        time.sleep(0.02)
    return take(lease_path, timeout=timeout)


def _hold(lease_path: Path, ttl: float) -> int:
    out = sys.stdout.buffer
    handle = osapi.try_lock(lease_path)
    if handle is None:
        out.write(BUSY)
        out.flush()
        return 1
    out.write(READY)
    out.flush()
    os.close(1)
    deadline = time.monotonic() + ttl
    # Also stop when the lease file is gone: its root was deleted, so nobody will ever finish the job.
    while time.monotonic() < deadline and lease_path.exists():
        time.sleep(min(HOLDER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    handle.release()
    return 0


if __name__ == "__main__":
    sys.exit(_hold(Path(sys.argv[1]), float(sys.argv[2])))
