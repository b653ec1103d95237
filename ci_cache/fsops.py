"""File operations that survive Windows: sharing violations, antivirus, read-only files, long paths.

Every file operation of ci-cache goes through here. On POSIX the same API has POSIX semantics and the
retries simply never trigger. Writes go to a temp name beside the target and are renamed in, so a
reader never sees half a file or half a folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

from ci_cache import osapi
from ci_cache.errors import StoreError

T = TypeVar("T")

TEMP_PREFIX = ".tmp-cicache-"


class RetryBudget(NamedTuple):
    """How long to keep retrying an operation that a sharing violation or a scanner blocks."""

    attempts: int = 8
    first_delay: float = 0.05
    max_delay: float = 2.0


DEFAULT_BUDGET = RetryBudget()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def with_retry(op: Callable[[], T], what: str, budget: RetryBudget = DEFAULT_BUDGET) -> T:
    """Run `op`, retrying with jittered exponential backoff while it fails with a transient error."""
    delay = budget.first_delay
    for attempt in range(1, budget.attempts + 1):
        try:
            return op()
        except OSError as exc:
            if not osapi.is_transient_error(exc) or attempt == budget.attempts:
                if osapi.is_transient_error(exc):
                    raise StoreError(
                        f"{what}: still locked by another process after {attempt} attempts ({exc})",
                        hint="an antivirus scanner or another job holds the file; "
                        "exclude the ci-cache root from real-time scanning",
                    ) from exc
                raise
            _sleep(delay * (0.5 + _jitter()))
            delay = min(delay * 2, budget.max_delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _jitter() -> float:
    """A random fraction in [0, 1), so that jobs blocked together retry apart (`random` loads only here)."""
    import random

    return random.random()


def _p(path: Path | str) -> str:
    return osapi.extended_path(path)


def replace(src: Path, dst: Path) -> None:
    """Rename `src` over `dst`, atomically, retrying while `dst` is held open."""

    def op() -> None:
        try:
            os.replace(_p(src), _p(dst))
        except PermissionError:
            # A read-only target blocks replacement on Windows; clear it and let the retry go again.
            if osapi.IS_WINDOWS and os.path.lexists(_p(dst)):
                osapi.clear_readonly(_p(dst))
            raise

    with_retry(op, f"rename {src} -> {dst}")


def rename_new(src: Path, dst: Path) -> bool:
    """Rename `src` to `dst` only if `dst` does not exist yet. False when someone else won the race."""

    def op() -> bool:
        try:
            if osapi.IS_WINDOWS:
                os.rename(_p(src), _p(dst))  # never replaces on Windows
            else:
                if os.path.lexists(dst):
                    return False
                # rename(2) replaces an empty dir target; the lexists check plus our writer lock makes
                # the window harmless, and a non-empty target fails with ENOTEMPTY below.
                os.rename(src, dst)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True

    return with_retry(op, f"rename {src} -> {dst}")


def unlink(path: Path, *, missing_ok: bool = True, budget: RetryBudget = DEFAULT_BUDGET) -> None:
    """Delete a file or a link (never what a link points to)."""

    def op() -> None:
        try:
            os.unlink(_p(path))
        except FileNotFoundError:
            if not missing_ok:
                raise
        except PermissionError:
            if osapi.IS_WINDOWS:
                osapi.clear_readonly(_p(path))
            raise

    with_retry(op, f"delete {path}", budget)


def rmtree(path: Path) -> None:
    """Delete a tree bottom-up without following symlinks or junctions, clearing read-only bits.

    A link inside the tree is removed as a link: what it points to (a shared cache!) is never touched.
    Entries that stay locked are left (with their folders) while everything else goes; then one
    StoreError names them.
    """
    top = _tree_top(path)
    if not os.path.lexists(top):
        return
    if osapi.is_link_or_junction(top) or not os.path.isdir(top):
        _remove_entry(top)
        return
    stuck: list[StoreError] = []
    stuck_dirs: set[str] = set()

    def attempt(full: str, remove: Callable[[str], None]) -> None:
        try:
            remove(full)
        except StoreError as exc:
            stuck.append(exc)
            parent = os.path.dirname(full)
            while len(parent) >= len(top):
                stuck_dirs.add(parent)
                parent = os.path.dirname(parent)

    for dirpath, dirnames, filenames in os.walk(top, topdown=False, followlinks=False):
        for name in filenames:
            attempt(os.path.join(dirpath, name), _remove_entry)
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if osapi.is_link_or_junction(full):
                attempt(full, _remove_entry)
            elif full not in stuck_dirs:
                attempt(full, _remove_dir)
    if top not in stuck_dirs:
        attempt(top, _remove_dir)
    if stuck:
        first = stuck[0]
        raise StoreError(f"{len(stuck)} entr{'y' if len(stuck) == 1 else 'ies'} of {path} could not be deleted: "
                         f"{first}", hint=first.hint)


def _tree_top(path: Path) -> str:
    """The `\\\\?\\` form on Windows whatever the length: entries below a short top can be long."""
    return osapi.extended_path(os.path.abspath(path), always=True)


def _make_parent_writable(full: str) -> None:
    """POSIX: deleting needs write permission on the folder, which a read-only tree lacks."""
    parent = os.path.dirname(full)
    with contextlib.suppress(OSError):
        mode = os.lstat(parent).st_mode
        if not mode & stat.S_IWUSR:
            os.chmod(parent, mode | stat.S_IWUSR | stat.S_IXUSR)


def _remove_entry(full: str) -> None:
    # A junction or a dir symlink is removed with rmdir on Windows; everything else with unlink.
    as_dir = osapi.IS_WINDOWS and osapi.is_link_or_junction(full) and os.path.isdir(full)
    _delete(full, os.rmdir if as_dir else os.unlink)


def _remove_dir(full: str) -> None:
    _delete(full, os.rmdir)


def _delete(full: str, remover: Callable[[str], None]) -> None:
    """Delete one entry; a read-only bit (Windows) or a read-only folder (POSIX) is cleared first."""

    def op() -> None:
        try:
            remover(full)
        except FileNotFoundError:
            return
        except PermissionError as exc:
            if getattr(exc, "winerror", None) in (osapi.WINERROR_SHARING_VIOLATION, osapi.WINERROR_LOCK_VIOLATION):
                raise  # held open by someone: wait and retry
            # Access denied may be a read-only bit, which is no lock: clear it and go again at once;
            # if it is still refused, the backoff takes over.
            osapi.clear_readonly(full)
            _make_parent_writable(full)
            try:
                remover(full)
            except FileNotFoundError:
                return
        except OSError as exc:
            # A deleted name lingers while another handle to the file is open (delete pending).
            if getattr(exc, "winerror", None) == 145:
                raise PermissionError(exc.errno, exc.strerror, exc.filename, 32) from exc
            raise

    with_retry(op, f"delete {full}")


def makedirs(path: Path) -> None:
    """Create a folder and its parents; an existing folder is fine, a file in the way is an error."""
    with_retry(lambda: os.makedirs(_p(path), exist_ok=True), f"create folder {path}")


def mkdir(path: Path | str) -> None:
    """Create one folder that must not exist yet (FileExistsError if it does)."""
    with_retry(lambda: os.mkdir(_p(path)), f"create folder {path}")


def symlink(text: str, path: Path | str) -> None:
    """Create a symlink at `path` holding `text`."""
    with_retry(lambda: os.symlink(text, _p(path)), f"create link {path}")


def touch(path: Path, *, ns: tuple[int, int] | None = None) -> None:
    """Set a file's or folder's times: to now (a use, or a heartbeat), or to `ns` (atime, mtime)."""
    with_retry(lambda: os.utime(_p(path)) if ns is None else os.utime(_p(path), ns=ns), f"set the times of {path}")


def write_new(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Create a file that must not exist yet and write it through to the disk; nothing is left on failure.

    `durable=False` skips the fsync, for a job's own files (its record, its manifests, its summary): a crash
    of the machine ends the job anyway, and on a disk each fsync waits for a journal commit.
    """

    def op() -> None:
        fd = os.open(_p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(_p(path))
            raise
        os.close(fd)

    with_retry(op, f"write {path}")


def discard(path: Path) -> bool:
    """Delete a temp file (a temp name, which gc knows) if nothing holds it; if a scanner or another
    process does, leave it to gc rather than wait. True when it is gone."""
    try:
        os.unlink(_p(path))
    except FileNotFoundError:
        return True
    except OSError as exc:
        if osapi.is_transient_error(exc):
            return False
        raise
    return True


def temp_sibling(target: Path) -> Path:
    """A fresh temp name in the target's own folder, so that renaming it in is atomic."""
    return target.parent / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(5).hex()}"


def write_atomic(target: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write a whole file: readers see the old content or the new, never a mix. `mode` (POSIX permission
    bits, less the umask) is the new file's; `durable` as for `write_new`."""
    makedirs(target.parent)
    tmp = temp_sibling(target)
    write_new(tmp, data, mode=mode, durable=durable)
    try:
        replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            discard(tmp)
        raise


def copy_file(src: Path, dst: Path) -> None:
    """Copy a file's bytes, permission bits and mtime (not a link: the caller decides links).

    The mtime says when uv wrote an index file, which merges compare ("the newer one wins"). Extended
    attributes are not copied: shutil.copy2's xattr calls cost more than the copy of a small file.
    """

    def op() -> None:
        s, d = _p(src), _p(dst)
        st = os.stat(s, follow_symlinks=False)
        _copyfile(s, d)
        os.chmod(d, stat.S_IMODE(st.st_mode))
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))

    with_retry(op, f"copy {src} -> {dst}")


def _copyfile(src: str, dst: str) -> None:
    import shutil  # only where something is copied: it also loads the compression modules

    shutil.copyfile(src, dst, follow_symlinks=False)


def link_or_copy(src: Path, dst: Path, *, link: bool) -> bool:
    """Hardlink `src` to `dst` when asked and possible, else copy. True when it linked."""
    if link and _try_link(_p(src), _p(dst)):
        return True
    copy_file(src, dst)
    return False


def put_file(src: Path, dst: Path, *, overwrite: bool = True,
             link_text: Callable[[str], str] | None = None) -> bool:
    """Copy one file, or recreate one symlink, at `dst` atomically: made under a temp name beside it, then
    renamed in. `overwrite=False` keeps an existing `dst` and returns False. `link_text` rewrites the text
    of a symlink (a cache's absolute links name their own cache)."""
    tmp = temp_sibling(dst)
    try:
        if os.path.islink(_p(src)):
            text = os.readlink(_p(src))
            symlink(link_text(text) if link_text else text, tmp)
        else:
            copy_file(src, tmp)
        if not overwrite:
            return rename_new(tmp, dst)
        replace(tmp, dst)
        return True
    finally:
        if os.path.lexists(_p(tmp)):
            unlink(tmp)


class TreeCount:
    """Files made, bytes written (copies only: a hardlink takes no space), files linked."""

    __slots__ = ("bytes", "files", "linked")

    def __init__(self, files: int = 0, bytes: int = 0, linked: int = 0) -> None:
        self.files, self.bytes, self.linked = files, bytes, linked


def clone_tree(src: Path, dst: Path, *, link: bool, count: TreeCount | None = None,
               skip: Callable[[str], bool] | None = None) -> TreeCount:
    """Recreate the tree `src` at `dst` (which must not exist): dirs made, files linked or copied.

    Symlinks are recreated as symlinks with the same text. Entries whose name `skip` accepts are left out.
    This is the hot loop of seeding (tens of thousands of files), so it works on plain strings.
    """
    count = count or TreeCount()
    join, scandir = os.path.join, os.scandir
    mkdir(_tree_top(dst))
    stack = [(_tree_top(src), _tree_top(dst))]
    while stack:
        s_dir, d_dir = stack.pop()
        with scandir(s_dir) as it:
            for entry in it:
                name = entry.name
                if skip is not None and skip(name):
                    continue
                target = join(d_dir, name)
                if entry.is_symlink():
                    symlink(os.readlink(entry.path), target)
                elif entry.is_dir():
                    mkdir(target)
                    stack.append((entry.path, target))
                else:
                    count.files += 1
                    if link and _try_link(entry.path, target):
                        count.linked += 1  # a link takes no space: only copies count as bytes
                    else:
                        copy_file(Path(entry.path), Path(target))
                        count.bytes += entry.stat(follow_symlinks=False).st_size
    return count


def _try_link(src: str, dst: str) -> bool:
    try:
        os.link(src, dst, follow_symlinks=False)
        return True
    except OSError as exc:
        cannot_link = exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP)
        if cannot_link or osapi.is_transient_error(exc):
            return False
        raise


def stage_tree(src: Path, dst: Path, *, link: bool, skip: Callable[[str], bool] | None = None,
               prepare: Callable[[Path], None] | None = None) -> TreeCount | None:
    """Copy (or link) the tree `src` under a temp name beside `dst`, then rename it in whole: readers see
    all of it or nothing. `prepare` may change the staged copy before it goes in. None when `dst`
    appeared meanwhile (a concurrent writer won; its copy is as good as ours)."""
    makedirs(dst.parent)
    tmp = temp_sibling(dst)
    try:
        count = clone_tree(src, tmp, link=link, skip=skip)
        if prepare is not None:
            prepare(tmp)
        if not rename_new(tmp, dst):
            return None
    finally:
        if os.path.lexists(_p(tmp)):
            rmtree(tmp)
    return count


def rename_away(path: Path) -> Path:
    """Take a folder out of the way at once: renamed to a temp name beside it, which it returns."""
    doomed = temp_sibling(path)
    replace(path, doomed)
    return doomed


def remove_whole(path: Path) -> None:
    """Delete a folder so that nobody ever sees half of it under its real name: renamed away, then deleted."""
    rmtree(rename_away(path))


def is_lock_or_temp(name: str) -> bool:
    """Lock files and temp entries: never copied from one cache into another."""
    return name.endswith(".lock") or is_temp_name(name)


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) below `path`, not following links."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(_tree_top(path), followlinks=False):
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                files += 1
                size += st.st_size
    return files, size


def walk_files(top: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Yield (path relative to top with '/' separators, entry) for every non-dir entry below `top`."""
    stack: list[tuple[str, str]] = [("", _tree_top(top))]
    while stack:
        rel, full = stack.pop()
        try:
            it = os.scandir(full)
        except FileNotFoundError:
            continue
        with it:
            for entry in it:
                rel_child = f"{rel}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel_child + "/", entry.path))
                else:
                    yield rel_child, entry


def is_temp_name(name: str) -> bool:
    """Temp files and folders of uv (`.tmp<random>`) and of ci-cache: never merged, reclaimable."""
    return name.startswith(".tmp")


def disk_free(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    import shutil

    return shutil.disk_usage(_p(probe)).free

