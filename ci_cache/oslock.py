"""OS file locks, and the lease holder that keeps a job's: `osapi`'s primitives that need nothing but the stdlib.

A lock is flock on POSIX (what uv uses, so our shared hold on uv's `.lock` really conflicts with `uv cache
clean`) and LockFileEx on the first byte range on Windows (also what uv uses). `osapi` imports everything
here and is where the rest of ci-cache gets it from.

This module imports no other module of ci-cache, and only what holding a lock needs, so that `setup`
can run it alone as the job's lease holder: `python -I -S oslock.py ci_cache.lease LEASE TTL [SHARED...]`.
The holder outlives setup until `finish` stops it, and a Python that loads only this costs a third of one
that imports ci-cache (measured by the bench's G1.steps). It takes the lease exclusive and the SHARED locks
(the root's layout lock) shared, says on stdout whether it got them (READY, BUSY, or FAILED with the
error), then holds them until it is stopped, the TTL runs out, or the lease file is deleted.
"""

from __future__ import annotations

import errno
import os
import sys
import time

TYPE_CHECKING = False  # what `typing.TYPE_CHECKING` says, without importing typing into the holder
if TYPE_CHECKING:
    from pathlib import Path
    from typing import IO

IS_WINDOWS = sys.platform == "win32"

# Windows error codes that mean "someone else has this file open right now".
WINERROR_ACCESS_DENIED = 5
WINERROR_SHARING_VIOLATION = 32
WINERROR_LOCK_VIOLATION = 33
TRANSIENT_WINERRORS = frozenset({WINERROR_ACCESS_DENIED, WINERROR_SHARING_VIOLATION, WINERROR_LOCK_VIOLATION})

# Windows' MAX_PATH, counting the terminating NUL.
MAX_PATH = 260

# The holder's first argument: names the process for `ps` (and the soak test, which finds holders by it).
HOLDER_TAG = "ci_cache.lease"
# What the holder says on its stdout once it has tried: the one line `lease.start_holder` waits for.
READY = b"ready\n"
BUSY = b"busy\n"
FAILED = b"failed "  # then "<errno> <winerror> <text>"
# How often the holder checks that its lease file still exists.
HOLDER_POLL_SECONDS = 5.0


def extended_path(path: Path | str, *, always: bool = False) -> str:
    """The form of a path that the OS accepts at any length.

    On Windows, paths over MAX_PATH need the `\\\\?\\` prefix, which also turns off `.`/`..`
    processing, so the path is made absolute first. POSIX has no such limit. `always`: prefix short
    paths too (the top of a tree walk, whose entries may be long).
    """
    text = os.fspath(path)
    if not IS_WINDOWS or text.startswith("\\\\?\\") or (len(text) < MAX_PATH - 12 and not always):
        return text
    text = os.path.abspath(text)
    if text.startswith("\\\\"):
        return "\\\\?\\UNC\\" + text[2:]
    return "\\\\?\\" + text


class FileLockHandle:
    """An open lock file holding an OS lock; closing it (or the process dying) releases the lock."""

    def __init__(self, fh: IO[bytes], path: Path | str) -> None:
        self._fh = fh
        self.path = path
        self._companions: list[FileLockHandle] = []

    def hold_also(self, other: FileLockHandle) -> None:
        """Release `other` together with this one (the root's layout hold goes with a job's lease)."""
        self._companions.append(other)

    def release(self) -> None:
        companions, self._companions = self._companions, []
        for other in companions:
            other.release()
        if self._fh.closed:
            return
        _unlock_quietly(self._fh)
        self._fh.close()

    def __enter__(self) -> FileLockHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def try_lock(path: Path | str, *, shared: bool = False) -> FileLockHandle | None:
    """Take an OS lock on `path` without waiting; None when another process (or handle) holds it.

    No retries here: `locks.try_lock` retries a transient error (a scanner holding the file).
    """
    while True:
        os.makedirs(extended_path(os.path.dirname(os.fspath(path))), exist_ok=True)
        # Read-only: a lock needs no write access, and a process holding a file open for writing keeps its
        # file system from being remounted read-only (or from being checked once it is).
        fd = os.open(extended_path(path), os.O_RDONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        fh = os.fdopen(fd, "rb")
        try:
            _lock(fh, shared=shared)
        except OSError as exc:
            fh.close()
            if _is_lock_contention(exc):
                return None
            raise
        if _still_named_by(fh, path):
            return FileLockHandle(fh, path)
        # Its holder deleted the file between our open and our lock (`claim.give_back` releases a lease,
        # then deletes it): we lock a file nobody will ever look at again, while a newcomer may lock a new
        # file under the same name. Let go and lock whatever the name names now.
        _unlock_quietly(fh)
        fh.close()


def _still_named_by(fh: IO[bytes], path: Path | str) -> bool:
    """True when `path` still names the file `fh` has open.

    POSIX deletes an open file's name at once. Windows cannot delete a file that a handle without delete
    sharing has open (Python's open() gives none), so there the name always still names our file.
    """
    if IS_WINDOWS:
        return True
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)


def _unlock_quietly(fh: IO[bytes]) -> None:
    """Unlock, whatever happens: closing the file unlocks it anyway (a try, not contextlib: the holder
    imports nothing it can do without)."""
    try:  # noqa: SIM105 - contextlib would be one more import in the holder
        _unlock(fh)
    except OSError:
        pass


def _is_lock_contention(exc: OSError) -> bool:
    if IS_WINDOWS:
        return getattr(exc, "winerror", None) in (WINERROR_LOCK_VIOLATION, WINERROR_SHARING_VIOLATION, 5)
    return exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


if sys.platform == "win32":
    import ctypes
    import msvcrt
    from ctypes import wintypes

    _LOCKFILE_FAIL_IMMEDIATELY = 0x1
    _LOCKFILE_EXCLUSIVE_LOCK = 0x2

    class _Overlapped(ctypes.Structure):
        _fields_ = (
            ("Internal", ctypes.c_void_p),
            ("InternalHigh", ctypes.c_void_p),
            ("Offset", wintypes.DWORD),
            ("OffsetHigh", wintypes.DWORD),
            ("hEvent", wintypes.HANDLE),
        )

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    _kernel32.LockFileEx.argtypes = (
        wintypes.HANDLE,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.DWORD,
        ctypes.POINTER(_Overlapped),
    )
    _kernel32.UnlockFileEx.argtypes = (
        wintypes.HANDLE,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.DWORD,
        ctypes.POINTER(_Overlapped),
    )

    def _lock(fh: IO[bytes], *, shared: bool) -> None:
        handle = msvcrt.get_osfhandle(fh.fileno())  # type: ignore[attr-defined]
        flags = _LOCKFILE_FAIL_IMMEDIATELY | (0 if shared else _LOCKFILE_EXCLUSIVE_LOCK)
        overlapped = _Overlapped()
        if not _kernel32.LockFileEx(handle, flags, 0, 1, 0, ctypes.byref(overlapped)):
            code = ctypes.get_last_error()  # type: ignore[attr-defined]
            raise OSError(errno.EACCES, ctypes.FormatError(code), None, code)  # type: ignore[attr-defined]

    def _unlock(fh: IO[bytes]) -> None:
        handle = msvcrt.get_osfhandle(fh.fileno())  # type: ignore[attr-defined]
        overlapped = _Overlapped()
        _kernel32.UnlockFileEx(handle, 0, 1, 0, ctypes.byref(overlapped))

else:
    import fcntl

    def _lock(fh: IO[bytes], *, shared: bool) -> None:
        fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)

    def _unlock(fh: IO[bytes]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------------
# The lease holder.


def hold(lease: str, ttl: float, shared: list[str]) -> int:
    """Take the lease (exclusive) and `shared` (shared), say so on stdout, and hold them; the holder's body.

    Each lock is tried once: `lease.start_holder` retries a transient failure by starting a new holder, and
    a BUSY lease is the one place where two setups of one job id started at the same instant are told apart.
    """
    out = sys.stdout.buffer
    try:
        companions = []
        for path in shared:
            companion = try_lock(path, shared=True)
            if companion is None:  # setup holds it shared: only a migration's exclusive hold is in the way
                raise OSError(0, f"{path} is held exclusive (a migration of the root is running)")
            companions.append(companion)
        handle = try_lock(lease)
    except OSError as exc:
        words = f"{exc.errno or 0} {getattr(exc, 'winerror', None) or 0} {exc.strerror or exc}"
        out.write(FAILED + words.replace("\n", " ").encode(errors="replace") + b"\n")
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
    while time.monotonic() < deadline and os.path.exists(lease):
        time.sleep(min(HOLDER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    handle.release()
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != HOLDER_TAG:
        sys.stderr.write(f"usage: python -I -S oslock.py {HOLDER_TAG} LEASE TTL [SHARED...]\n")
        sys.exit(2)
    sys.exit(hold(sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
