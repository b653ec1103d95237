"""Bounding a uv cache: `uv cache prune`, then least recently used whole entries, pointers first.

An entry is an archive together with every pointer and sdist version folder that names it. The
pointers go first, so that no reader ever finds a pointer to a missing archive. The last use of an
archive is its folder's mtime, which key-file seeding refreshes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci_cache import fsops
from ci_cache.tools.base import PruneReport, PruneRequest
from ci_cache.tools.uv.layout import (
    ARCHIVE_BUCKET,
    POINTER_SUFFIXES,
    SDIST_POINTERS,
    archive_ids,
    bucket_kind,
    find_uv,
    group_keys,
    group_members,
    hold_root_lock,
    linked_archive,
    links_below,
    sdist_pointer,
    walk_dirs,
)


@dataclass
class _Entry:
    archive: str
    size: int
    last_used: float
    pointers: list[Path] = field(default_factory=list)  # files to delete first
    folders: list[Path] = field(default_factory=list)  # sdist version folders that link to it


def run_uv_prune(cache: Path, *, uv: str | None, ci: bool, env: Mapping[str, str], timeout: float) -> str:
    """`uv cache prune` on `cache`: what it said, or why it did not run."""
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
    entries: dict[str, _Entry] = {}
    for archive in archive_ids(cache):
        path = cache / ARCHIVE_BUCKET / archive
        entries[archive] = _Entry(archive, fsops.tree_size(path)[1], os.lstat(path).st_mtime)
    names: dict[str, list[Path]] = defaultdict(list)
    for bucket in sorted(os.listdir(cache)):
        kind = bucket_kind(bucket)
        if kind == "wheels":
            for folder, _rel, files in walk_dirs(cache / bucket, bucket):
                for key in group_keys(files):
                    if key not in files:
                        continue
                    linked = linked_archive(folder / key)
                    if linked in entries:
                        group = [folder / name for name in group_members(key)]
                        names[linked].extend(p for p in group if os.path.lexists(p))
        elif kind == "sdists":
            for folder, _rel, files in walk_dirs(cache / bucket, bucket):
                if sdist_pointer(files) is None:
                    continue
                for _link, named in links_below(folder):
                    if named in entries:
                        entries[named].folders.append(folder)
    for archive, pointers in names.items():
        # Pointers go first: the .http/.rev (what uv trusts), then the rest of the group.
        entries[archive].pointers = sorted(set(pointers), key=lambda p: (p.suffix not in POINTER_SUFFIXES, str(p)))
    return entries


def prune_cache(request: PruneRequest) -> PruneReport:
    """Bound a uv cache. The caller holds ci-cache's writer lock for it."""
    now = time.time() if request.now is None else request.now
    cache, max_size, max_age = request.cache, request.max_size, request.max_age
    report = PruneReport("uv")
    if not cache.is_dir():
        return report
    report.bytes_before = fsops.tree_size(cache)[1]
    report.uv_prune = run_uv_prune(cache, uv=find_uv(request.env), ci=request.ci, env=request.env,
                                   timeout=request.lock_timeout)
    # Exclusive: no job may be seeding from an archive we are about to delete.
    with hold_root_lock(cache, exclusive=True, timeout=request.lock_timeout,
                        purpose="uv's cache lock, to evict entries"):
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
            fsops.remove_whole(folder)
    archive = cache / ARCHIVE_BUCKET / entry.archive
    if archive.is_dir():
        freed += entry.size
        fsops.remove_whole(archive)
    return freed
