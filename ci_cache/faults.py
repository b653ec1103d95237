"""What a file-system error under the root means for the user: the real cause, in words, and what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

from ci_cache import fsops, osapi
from ci_cache.errors import CiCacheError, StoreError

ROOT_SETTING = "set `root:` in ci-cache.yml (CI_CACHE_ROOT) to another folder"
FREE_SPACE = ("free space there: `ci-cache prune --max-size SIZE` bounds the shared caches and `ci-cache gc` "
              "reclaims dead jobs; or " + ROOT_SETTING + " on a bigger disk")


class Fault(NamedTuple):
    """One error of the file system, explained: `cause` names the thing that is wrong, `hint` the remedy."""

    cause: str
    hint: str
    full: bool = False  # out of space (or inodes, or quota): freeing space cures it


def explain(exc: BaseException, root: Path) -> Fault:
    """The cause of `exc` met while using the ci-cache root `root`, and what to do about it."""
    if isinstance(exc, StoreError):
        return Fault(exc.message, exc.hint or ROOT_SETTING)  # ours: says it already (a lock held for good)
    if isinstance(exc, CiCacheError):
        return Fault(str(exc), ROOT_SETTING)
    if not isinstance(exc, OSError):
        return Fault(str(exc), ROOT_SETTING)
    where = exc.filename or root
    code = exc.errno
    if code == errno.ENOSPC:
        return Fault(f"the disk holding the ci-cache root {root} is full ({exc.strerror or 'no space left'}: "
                     f"{_what_is_full(root)})", FREE_SPACE, full=True)
    if code == errno.EDQUOT:
        return Fault(f"the disk quota for the ci-cache root {root} is used up", FREE_SPACE, full=True)
    if code == errno.EROFS:
        return Fault(f"the ci-cache root {root} is on a read-only file system",
                     "remount it read-write, or " + ROOT_SETTING)
    if osapi.is_transient_error(exc):
        return Fault(f"{where} is held by another process ({exc.strerror or exc})",
                     "an antivirus scanner or another job holds it; exclude the ci-cache root from real-time "
                     "scanning")
    if code in (errno.EACCES, errno.EPERM):
        return Fault(f"permission denied on {where}",
                     f"give the agent's user write access to {root}, or " + ROOT_SETTING)
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _file_in_the_way(Path(where), root)
        if blocker is not None:
            return Fault(f"{blocker} is a file, not a folder", f"move it out of the way, or {ROOT_SETTING}")
    if code == errno.ENAMETOOLONG:
        return Fault(f"the path {where} is too long",
                     "a shorter root (such as C:\\cc), or enable long paths in Windows")
    if code == errno.EIO:
        return Fault(f"an I/O error on the disk holding {root} ({where})", "check the disk, then " + ROOT_SETTING)
    return Fault(f"{where}: {exc.strerror or exc}", ROOT_SETTING)


def store_error(exc: BaseException, root: Path, what: str) -> StoreError:
    """A StoreError for `exc` met under `root`: `what` failed, the cause, and the remedy."""
    fault = explain(exc, root)
    return StoreError(f"{what}: {fault.cause}", hint=fault.hint)


def _what_is_full(root: Path) -> str:
    """Blocks or inodes, and how much is left: `df`'s two questions."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return f"{fsops.disk_free(root) / 2**20:.1f} MiB free"
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = statvfs(probe)
    except OSError:
        return "no space left on device"
    if st.f_files and st.f_favail == 0:
        return f"no free inodes, all {st.f_files} files it can hold exist"
    return f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB free of {st.f_blocks * st.f_frsize / 2**20:.1f} MiB"


def _file_in_the_way(path: Path, root: Path) -> Path | None:
    """The file that stands where a folder on the way to `path` (or the root) should be."""
    for candidate in (*reversed(path.parents), path, root):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None
