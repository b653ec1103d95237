"""Every difference between Windows and POSIX that ci-cache cares about, in one place."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

# The primitives the lease holder runs alone, with nothing but the standard library (`oslock`'s docstring).
from ci_cache.oslock import (
    IS_WINDOWS,
    MAX_PATH,
    TRANSIENT_WINERRORS,
    WINERROR_ACCESS_DENIED,
    WINERROR_LOCK_VIOLATION,
    WINERROR_SHARING_VIOLATION,
    FileLockHandle,
    extended_path,
    try_lock,
)

if TYPE_CHECKING:  # imported where used: setup and finish start their helpers without it
    import signal
    import subprocess

__all__ = ["IS_WINDOWS", "MAX_PATH", "TRANSIENT_WINERRORS", "WINERROR_ACCESS_DENIED", "WINERROR_LOCK_VIOLATION",
           "WINERROR_SHARING_VIOLATION", "FileLockHandle", "extended_path", "try_lock"]


def default_root(env: Mapping[str, str], home: Path) -> Path:
    """Where ci-cache keeps its shared caches and job dirs when the config says nothing."""
    if IS_WINDOWS:
        local = env.get("LOCALAPPDATA")
        return Path(local) / "ci-cache" if local else home / "AppData" / "Local" / "ci-cache"
    xdg = env.get("XDG_CACHE_HOME")
    return Path(xdg) / "ci-cache" if xdg else home / ".cache" / "ci-cache"


def hostname() -> str:
    """This machine's name, as `socket.gethostname()` says it, without importing socket on POSIX."""
    if IS_WINDOWS:
        import socket

        return socket.gethostname()
    return os.uname().nodename


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
# Bulk hardlinking.

# Keep each `cp` command line well under ARG_MAX.
_CP_BATCH_CHARS = 100_000


def listed_as_same_file(a: os.DirEntry[str], b: os.DirEntry[str]) -> bool:
    """Whether two listed files are one file (hardlinks of each other), from what the listings carry.

    POSIX: the inode, which the listing carries. Windows: the listing carries no file id (asking for one
    opens each file, which under a scanner or Wine costs milliseconds a file), so the size and the mtime
    stand for it: a file written through either link changes both links' mtime, and a file replaced by
    another one has its own mtime, unless a job sets the old one back on purpose.
    """
    if IS_WINDOWS:
        sa, sb = a.stat(follow_symlinks=False), b.stat(follow_symlinks=False)
        return (sa.st_size, sa.st_mtime_ns) == (sb.st_size, sb.st_mtime_ns)
    return a.inode() == b.inode()


def start_bulk_link(sources: list[str], target_dir: str) -> list[subprocess.Popen[bytes]] | None:
    """Start hardlinking whole trees into `target_dir` with the system's `cp -al` (C speed, and on
    another core than ours); None where there is no such `cp` (Windows), so the caller links in Python.
    The caller waits for the returned processes; any non-zero exit means: redo it in Python."""
    if IS_WINDOWS or not sources:
        return None
    import subprocess

    procs: list[subprocess.Popen[bytes]] = []
    batch: list[str] = []
    size = 0
    for source in [*sources, None]:
        if source is None or (size + len(source) > _CP_BATCH_CHARS and batch):
            try:
                procs.append(subprocess.Popen(["cp", "-al", *batch, target_dir + os.sep], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            except FileNotFoundError:  # no `cp` on PATH
                for proc in procs:
                    proc.wait()
                return None
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
        argv = ["rm", "-rf", "--", str(path)]  # found on the PATH: a missing `rm` fails the start
    try:
        spawn_detached(argv, env)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Processes.

if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]


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
    import signal

    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)


def spawn_detached(argv: list[str], env: Mapping[str, str] | None, *,
                   first_line: bool = False) -> tuple[int, bytes]:
    """Start a helper that outlives us: its own session (process group on Windows), none of our stdio, and
    `env` without a CI's process-tracking variables (None: ours as it is). Returns its pid and, with
    `first_line`, the first line it writes on its stdout (b"" when it ends without one). The program is looked
    up on the PATH of `env`; a missing one raises OSError.

    POSIX: `os.posix_spawnp`, so that the setup and finish processes, which start no other child, never
    import subprocess (with signal, threading and selectors, 4 ms of CPU each). The caller reaps the helper
    if it stays alive no longer than the caller (`reap`); else, once we exit, init does.
    """
    child_env = dict(os.environ) if env is None else outliving_env(env)
    spawn = getattr(os, "posix_spawnp", None)
    if not IS_WINDOWS and spawn is not None:
        read_end = write_end = -1
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            if first_line:
                read_end, write_end = os.pipe()
            out = write_end if first_line else devnull
            dup2 = os.POSIX_SPAWN_DUP2
            actions = [(dup2, devnull, 0), (dup2, out, 1), (dup2, devnull, 2)]
            # A platform without setsid for posix_spawn raises NotImplementedError: then subprocess (below)
            # starts the helper instead, as on Windows.
            with contextlib.suppress(NotImplementedError):
                pid = int(spawn(argv[0], argv, child_env, file_actions=actions, setsid=True))
                if write_end >= 0:
                    os.close(write_end)
                    write_end = -1
                return pid, _first_line(read_end) if first_line else b""
        finally:
            for fd in (devnull, read_end, write_end):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
    import subprocess

    stdout = subprocess.PIPE if first_line else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL, env=child_env,
                            **detached_popen_kwargs())  # type: ignore[call-overload]
    line = b""
    if first_line:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()
    return int(proc.pid), line


def _first_line(fd: int) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    line, newline, _rest = data.partition(b"\n")
    return line + newline


def reap(pid: int, *, kill: bool = False) -> None:
    """Wait for a helper we started to end (killed first with `kill`), so that it leaves no zombie behind."""
    if kill:
        with contextlib.suppress(OSError):
            os.kill(pid, 9 if not IS_WINDOWS else 1)
    if IS_WINDOWS:
        return  # Windows keeps no zombies: a process ends by itself
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


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
    import signal

    if IS_WINDOWS:
        return (signal.SIGINT, signal.SIGBREAK)  # type: ignore[attr-defined]
    return (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def send_signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Pass a signal on to a child; Windows can only deliver Ctrl-Break to a process group."""
    import signal

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
