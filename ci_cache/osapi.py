"""Every difference between Windows and POSIX that ci-cache cares about, in one place."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
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


def default_root(env: Mapping[str, str], home: Path) -> Path:
    """Where ci-cache keeps its shared caches and job dirs when the config says nothing."""
    if IS_WINDOWS:
        local = env.get("LOCALAPPDATA")
        return Path(local) / "ci-cache" if local else home / "AppData" / "Local" / "ci-cache"
    xdg = env.get("XDG_CACHE_HOME")
    return Path(xdg) / "ci-cache" if xdg else home / ".cache" / "ci-cache"


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


def is_transient_error(exc: OSError) -> bool:
    """True for the errors a concurrent reader or an antivirus scan causes: retry them."""
    winerror = getattr(exc, "winerror", None)
    if winerror is not None:
        return int(winerror) in TRANSIENT_WINERRORS
    # POSIX has no sharing violations; EBUSY/ETXTBSY are the nearest kin (e.g. NFS, busy mounts).
    return exc.errno in (errno.EBUSY, errno.ETXTBSY)


def clear_readonly(path: str) -> None:
    """Make a file deletable: on Windows a read-only attribute blocks unlink and rename over it."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 if not os.path.isdir(path) else 0o777, follow_symlinks=False)


def is_link_or_junction(path: str) -> bool:
    """True for symlinks and, on Windows, junctions: deleting must never follow either."""
    if os.path.islink(path):
        return True
    if IS_WINDOWS:
        isjunction = getattr(os.path, "isjunction", None)
        if isjunction is not None:
            return bool(isjunction(path))
    return False


# ---------------------------------------------------------------------------------------------------
# File locks. POSIX: flock (what uv uses, so our shared hold on uv's `.lock` really conflicts with
# `uv cache clean`). Windows: LockFileEx on the first byte range, also what uv uses.


class FileLockHandle:
    """An open lock file holding an OS lock; closing it (or the process dying) releases the lock."""

    def __init__(self, fh: IO[bytes], path: Path) -> None:
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
        with contextlib.suppress(OSError):
            _unlock(self._fh)
        self._fh.close()

    def __enter__(self) -> FileLockHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def try_lock(path: Path, *, shared: bool = False) -> FileLockHandle | None:
    """Take an OS lock on `path` without waiting; None when another process (or handle) holds it.

    No retries here: `locks.try_lock` retries a transient error (a scanner holding the file).
    """
    while True:
        os.makedirs(extended_path(path.parent), exist_ok=True)
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
        with contextlib.suppress(OSError):
            _unlock(fh)
        fh.close()


def _still_named_by(fh: IO[bytes], path: Path) -> bool:
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
# Bulk hardlinking.

# Keep each `cp` command line well under ARG_MAX.
_CP_BATCH_CHARS = 100_000


def start_bulk_link(sources: list[str], target_dir: str) -> list[subprocess.Popen[bytes]] | None:
    """Start hardlinking whole trees into `target_dir` with the system's `cp -al` (C speed, and on
    another core than ours); None where there is no such `cp` (Windows), so the caller links in Python.
    The caller waits for the returned processes; any non-zero exit means: redo it in Python."""
    if IS_WINDOWS or not sources:
        return None
    cp = shutil.which("cp")
    if cp is None:
        return None
    procs: list[subprocess.Popen[bytes]] = []
    batch: list[str] = []
    size = 0
    for source in [*sources, None]:
        if source is None or (size + len(source) > _CP_BATCH_CHARS and batch):
            procs.append(subprocess.Popen([cp, "-al", *batch, target_dir + os.sep], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            batch, size = [], 0
        if source is not None:
            batch.append(source)
            size += len(source) + 1
    return procs


# A path with these in it is not safe on cmd's command line: `%NAME%` and `!NAME!` would be expanded.
_CMD_EXPANDS = ("%", "!")


def start_background_delete(path: Path, env: Mapping[str, str] | None = None) -> bool:
    """Delete a tree in a detached process that outlives us: `rm -rf` on POSIX, `cmd /c rd /s /q` on Windows,
    so that nobody waits for it, and no Python starts for it. False when none could start (no such program,
    or a path cmd would expand): the caller leaves the tree for gc.

    Neither follows symlinks or junctions, like fsops.rmtree. What is held open (Windows) stays, and gc
    deletes it later. `env` (the job's) reaches the process without the variables by which a CI finds and
    kills a step's leftover processes.
    """
    if IS_WINDOWS:
        target = extended_path(path, always=True)
        if any(c in target for c in _CMD_EXPANDS):
            return False
        argv = ["cmd.exe", "/d", "/c", "rd", "/s", "/q", target]  # /d: no AutoRun commands
    else:
        rm = shutil.which("rm")
        if rm is None:
            return False
        argv = [rm, "-rf", "--", str(path)]
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=None if env is None else outliving_env(env),
                         **detached_popen_kwargs())  # type: ignore[call-overload]
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Processes.


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (it may be another program after pid reuse)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        synchronize = 0x00100000
        query = 0x1000
        handle = _kernel32.OpenProcess(synchronize | query, False, pid)
        if not handle:
            return False
        try:
            still_active = 259
            code = wintypes.DWORD()
            _kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == still_active
        finally:
            _kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int) -> None:
    """Ask a process to stop (SIGTERM; TerminateProcess on Windows)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)


# Env vars by which CI systems find and kill a step's leftover processes. A helper that must outlive the
# step (Jenkins kills a `sh` step's children when the step ends) does not carry them.
PROCESS_TRACKING_VARS = ("JENKINS_NODE_COOKIE", "BUILD_ID", "JENKINS_SERVER_COOKIE", "RUNNER_TRACKING_ID")


def outliving_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a detached helper that must outlive the CI step that starts it."""
    return {k: v for k, v in env.items() if k not in PROCESS_TRACKING_VARS}


def detached_popen_kwargs() -> dict[str, object]:
    """Popen options for a helper process that must outlive us and not hold our stdio open."""
    if IS_WINDOWS:
        detached = 0x00000008
        new_group = 0x00000200
        no_window = 0x08000000
        return {"creationflags": detached | new_group | no_window, "close_fds": True}
    return {"start_new_session": True, "close_fds": True}


def forwardable_signals() -> tuple[signal.Signals, ...]:
    """The signals `run` passes on to its child."""
    if IS_WINDOWS:
        return (signal.SIGINT, signal.SIGBREAK)  # type: ignore[attr-defined]
    return (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def send_signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Pass a signal on to a child; Windows can only deliver Ctrl-Break to a process group."""
    with contextlib.suppress(OSError):
        if IS_WINDOWS:
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            proc.send_signal(signum)


def child_popen_kwargs() -> dict[str, object]:
    """Popen options for the wrapped command: on Windows its own group so Ctrl-Break can reach it."""
    if IS_WINDOWS:
        return {"creationflags": 0x00000200}
    return {}


def long_paths_enabled() -> bool | None:
    """Whether Windows accepts long paths without `\\\\?\\` (registry LongPathsEnabled); None off Windows."""
    if sys.platform != "win32":
        return None
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            value, _ = winreg.QueryValueEx(key, "LongPathsEnabled")
            return bool(value)
    except OSError:
        return False
