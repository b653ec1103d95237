"""`ci-cache prune`: keep the shared caches under a size and an age.

uv: first uv's own `uv cache prune` (which knows what it no longer needs), then least-recently-used
whole entries: an archive together with every pointer that names it, pointers first, so that no
reader ever finds a pointer to a missing archive. The last use of an archive is its folder's mtime,
which seeding refreshes. Other tools: least recently used files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_cache import fsops, locks, log
from ci_cache.tools.uv import (
    ARCHIVE_BUCKET,
    POINTER_SUFFIXES,
    ROOT_LOCK,
    SDIST_POINTERS,
    archive_id_of_link,
    bucket_kind,
    group_keys,
    walk_dirs,
)


@dataclass
class PruneReport:
    tool: str
    bytes_before: int = 0
    bytes_after: int = 0
    evicted_entries: int = 0
    evicted_files: int = 0
    uv_prune: str = "not run"
    notes: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    archive: str
    size: int
    last_used: float
    pointers: list[Path] = field(default_factory=list)  # files to delete first
    folders: list[Path] = field(default_factory=list)  # sdist version folders that link to it


def run_uv_prune(cache: Path, *, uv: str | None, ci: bool, env: Mapping[str, str], timeout: float) -> str:
    if uv is None:
        return "skipped: uv not found"
    cmd = [uv, "cache", "prune", *(["--ci"] if ci else [])]
    run_env = dict(env)
    run_env.update({"UV_CACHE_DIR": str(cache), "UV_LOCK_TIMEOUT": str(int(timeout)), "UV_NO_PROGRESS": "1"})
    proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=False, timeout=timeout + 60)
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    return " ".join(cmd[1:]) + ": " + (proc.stderr.strip().splitlines() or ["done"])[-1]


def _entries(cache: Path) -> dict[str, _Entry]:
    archive_root = cache / ARCHIVE_BUCKET
    entries: dict[str, _Entry] = {}
    if archive_root.is_dir():
        for item in os.scandir(archive_root):
            if fsops.is_temp_name(item.name) or not item.is_dir(follow_symlinks=False):
                continue
            _, size = fsops.tree_size(Path(item.path))
            entries[item.name] = _Entry(item.name, size, item.stat(follow_symlinks=False).st_mtime)
    names: dict[str, list[Path]] = defaultdict(list)
    for bucket in sorted(os.listdir(cache)):
        kind = bucket_kind(bucket)
        if kind == "wheels":
            for folder, _rel, files in walk_dirs(cache / bucket, bucket):
                for key in group_keys(files):
                    if key not in files:
                        continue
                    link = folder / key
                    archive = archive_id_of_link(str(link), is_symlink=link.is_symlink())
                    if archive in entries:
                        group = [folder / (key + s) for s in POINTER_SUFFIXES] + [folder / f"{key}.msgpack", link]
                        names[archive].extend(p for p in group if os.path.lexists(p))
        elif kind == "sdists":
            for folder, _rel, files in walk_dirs(cache / bucket, bucket):
                if not any(p in files for p in SDIST_POINTERS):
                    continue
                for sub, _r, sub_files in walk_dirs(folder, ""):
                    for name in sub_files:
                        path = sub / name
                        if path.is_symlink():
                            archive = archive_id_of_link(str(path), is_symlink=True)
                            if archive in entries:
                                entries[archive].folders.append(folder)
    for archive, pointers in names.items():
        # Pointers go first: the .http/.rev (what uv trusts), then the rest of the group.
        entries[archive].pointers = sorted(set(pointers), key=lambda p: (p.suffix not in POINTER_SUFFIXES, str(p)))
    return entries


def prune_uv(cache: Path, *, max_size: int | None, max_age: float | None, uv: str | None, ci: bool,
             env: Mapping[str, str], lock_timeout: float, now: float | None = None) -> PruneReport:
    """Bound a uv cache. The caller holds ci-cache's writer lock for the cache."""
    now = time.time() if now is None else now
    report = PruneReport("uv")
    if not cache.is_dir():
        return report
    report.bytes_before = fsops.tree_size(cache)[1]
    report.uv_prune = run_uv_prune(cache, uv=uv, ci=ci, env=env, timeout=lock_timeout)
    # Exclusive: no job may be seeding from an archive we are about to delete.
    handle, _ = locks.acquire(cache / ROOT_LOCK, timeout=lock_timeout, purpose="uv's cache lock, to evict entries")
    with handle:
        total = fsops.tree_size(cache)[1]
        for entry in sorted(_entries(cache).values(), key=lambda e: e.last_used):
            too_old = max_age is not None and now - entry.last_used > max_age
            too_big = max_size is not None and total > max_size
            if not (too_old or too_big):
                continue
            total -= _evict(cache, entry)
            report.evicted_entries += 1
        report.bytes_after = fsops.tree_size(cache)[1]
    if max_size is not None and report.bytes_after > max_size:
        report.notes.append(f"still {report.bytes_after} bytes: what is left is not evictable entries "
                            "(index metadata, git checkouts); raise max_size")
    return report


def _evict(cache: Path, entry: _Entry) -> int:
    freed = 0
    for pointer in entry.pointers:
        if os.path.lexists(pointer):
            freed += os.lstat(pointer).st_size
            fsops.unlink(pointer)
    for folder in entry.folders:
        for name in SDIST_POINTERS:
            fsops.unlink(folder / name)
        if folder.exists():
            freed += fsops.tree_size(folder)[1]
            _remove_whole(folder)
    archive = cache / ARCHIVE_BUCKET / entry.archive
    if archive.is_dir():
        freed += entry.size
        _remove_whole(archive)
    return freed


def _remove_whole(path: Path) -> None:
    """Rename away first, so nobody ever sees half a folder under its real name; then delete."""
    doomed = fsops.temp_sibling(path)
    fsops.replace(path, doomed)
    fsops.rmtree(doomed)


def prune_generic(cache: Path, tool: str, *, max_size: int | None, max_age: float | None,
                  now: float | None = None) -> PruneReport:
    """Least recently used files first (by the later of access and modification time)."""
    now = time.time() if now is None else now
    report = PruneReport(tool)
    files = []
    for _rel, entry in fsops.walk_files(cache):
        st = entry.stat(follow_symlinks=False)
        files.append((max(st.st_atime, st.st_mtime), st.st_size, Path(entry.path)))
    total = sum(size for _, size, _ in files)
    report.bytes_before = total
    for used, size, path in sorted(files):
        if (max_age is not None and now - used > max_age) or (max_size is not None and total > max_size):
            fsops.unlink(path)
            total -= size
            report.evicted_files += 1
    report.bytes_after = total
    return report


def find_uv(env: Mapping[str, str]) -> str | None:
    return shutil.which("uv", path=env.get("PATH"))


def log_report(report: PruneReport) -> None:
    log.info(f"prune {report.tool}: {report.bytes_before / 2**20:.1f} MiB -> {report.bytes_after / 2**20:.1f} MiB, "
             f"{report.evicted_entries} entries and {report.evicted_files} files evicted; {report.uv_prune}")
    for note in report.notes:
        log.warn(note)


def prune_store(store_shared: Path, tools: list[str], *, max_size: int | None, max_age: float | None,
                uv_ci: bool, env: Mapping[str, str], lock_timeout: float) -> list[PruneReport]:
    """Prune each shared cache under its writer lock; the bounds apply to each cache."""
    reports = []
    for tool in tools:
        cache = store_shared / tool
        if not cache.is_dir():
            continue
        handle, _ = locks.acquire(store_shared / f"{tool}.write.lock", timeout=lock_timeout,
                                  purpose=f"prune the shared {tool} cache")
        with handle:
            if tool == "uv":
                reports.append(prune_uv(cache, max_size=max_size, max_age=max_age, uv=find_uv(env), ci=uv_ci,
                                        env=env, lock_timeout=lock_timeout))
            else:
                reports.append(prune_generic(cache, tool, max_size=max_size, max_age=max_age))
    return reports
