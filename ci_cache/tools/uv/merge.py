"""Merging a job's new uv cache entries into the shared cache: whole entries, archives before pointers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ci_cache import fsops
from ci_cache.errors import StoreError
from ci_cache.tools.base import MergeRequest, MergeStats
from ci_cache.tools.uv.layout import (
    ARCHIVE_BUCKET,
    bucket_kind,
    group_keys,
    group_pointer,
    group_pointers,
    hold_root_lock,
    interpreter_store,
    linked_archive,
    links_below,
    retarget,
    retarget_tree_links,
    sdist_pointer,
    walk_dirs,
)
from ci_cache.tools.uv.manifest import Manifest

# Interpreter queries kept for new jobs (one small file per interpreter path).
MAX_INTERPRETERS = 256


class Merger:
    """One merge of a job's cache into the shared one. The caller holds ci-cache's writer lock."""

    def __init__(self, request: MergeRequest) -> None:
        self.req = request
        self.manifest = Manifest.load(request.manifest)
        self.stats = MergeStats()
        self.archives_done: set[str] = set()

    def run(self) -> MergeStats:
        job, shared = self.req.job, self.req.shared
        if not job.is_dir():
            return self.stats
        fsops.makedirs(shared)
        with hold_root_lock(shared):
            for bucket in sorted(os.listdir(job)):
                kind = bucket_kind(bucket)
                if kind == "wheels":
                    self._merge_wheels(bucket)
                elif kind == "sdists":
                    self._merge_sdists(bucket)
                elif kind == "index":
                    self._merge_index(bucket)
                elif kind == "other":
                    self._merge_other(bucket)
        self._keep_interpreters()
        return self.stats

    def _keep_interpreters(self) -> None:
        """Keep the job's interpreter queries beside the shared cache, never in it.

        uv keys them by the interpreter's absolute path and checks its mtime on use, so a stale one is
        only a miss; inside the shared cache, per-job venv paths would pile up forever. Here the
        newest MAX_INTERPRETERS stay, and each job starts with them.
        """
        store = interpreter_store(self.req.shared)
        for bucket in sorted(os.listdir(self.req.job)):
            if bucket_kind(bucket) != "interpreter":
                continue
            for rel, entry in fsops.walk_files(self.req.job / bucket):
                full_rel = f"{bucket}/{rel}"
                if fsops.is_lock_or_temp(entry.name) or self.manifest.unchanged(full_rel, entry.stat()):
                    continue
                target = store / full_rel
                fsops.makedirs(target.parent)
                self._put(Path(entry.path), target)
            _keep_newest(store / bucket, MAX_INTERPRETERS)

    # -- wheels: groups `<key>`, `<key>.http|.rev`, `<key>.msgpack`, taken whole.

    def _merge_wheels(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            for key in group_keys(names):
                pointer = group_pointer(key, names)
                if pointer is None:
                    continue
                st = os.stat(folder / pointer)
                if self.manifest.unchanged(f"{rel}/{pointer}", st):
                    continue
                self._merge_group(folder, rel, key, pointer, names)

    def _merge_group(self, folder: Path, rel: str, key: str, pointer: str, names: set[str]) -> None:
        target_dir = self.req.shared / rel
        if _group_valid(target_dir, key):
            self.stats.kept_existing += 1
            return
        if key in names:
            archive = linked_archive(folder / key)
            if archive is None or not self._ensure_archive(archive):
                self.stats.skipped += 1
                return
        fsops.makedirs(target_dir)
        # The pointer goes last: uv only trusts a group whose pointer exists.
        for name in (f"{key}.msgpack", key, pointer):
            if name in names:
                self._put(folder / name, target_dir / name)
        self.stats.entries += 1
        self.stats.details.append(f"{rel}/{key}")

    # -- sdists: `<version>/` with a revision pointer and revision folders.

    def _merge_sdists(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            pointer = sdist_pointer(names)
            if pointer is None:
                continue
            if self.manifest.unchanged(f"{rel}/{pointer}", os.stat(folder / pointer)):
                continue
            target = self.req.shared / rel
            if (target / pointer).exists():
                self.stats.kept_existing += 1
                continue
            ok = True
            for entry in os.scandir(folder):
                if entry.is_dir(follow_symlinks=False) and not fsops.is_temp_name(entry.name):
                    ok = ok and self._merge_revision(Path(entry.path), target / entry.name)
            if not ok:
                self.stats.skipped += 1
                continue
            self._put(folder / pointer, target / pointer)
            self.stats.entries += 1
            self.stats.details.append(rel)

    def _merge_revision(self, src: Path, dst: Path) -> bool:
        if dst.exists():
            return True
        if not all(self._ensure_archive(archive) for _link, archive in links_below(src)):
            return False
        self._stage_whole(src, dst, link=False,
                          prepare=lambda tmp: retarget_tree_links(tmp, self.req.job, self.req.shared))
        return True

    # -- archives: copied into a temp folder inside the target bucket, then renamed into place.

    def _ensure_archive(self, archive: str) -> bool:
        if archive in self.archives_done:
            return True
        src = self.req.job / ARCHIVE_BUCKET / archive
        dst = self.req.shared / ARCHIVE_BUCKET / archive
        if dst.is_dir():
            self.archives_done.add(archive)
            return True
        if not src.is_dir():
            return False
        self._stage_whole(src, dst, link=True)
        self.archives_done.add(archive)
        return True

    def _stage_whole(self, src: Path, dst: Path, *, link: bool, prepare: Callable[[Path], None] | None = None) -> bool:
        """`src` renamed in whole at `dst`; False when a concurrent writer put it there first."""
        count = fsops.stage_tree(src, dst, link=link, skip=fsops.is_lock_or_temp, prepare=prepare)
        if count is None:
            return False
        self.stats.files += count.files
        self.stats.bytes += count.bytes
        return True

    # -- index files: add what is missing; the newer copy wins.

    def _merge_index(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            for name in names:
                if name.endswith(".lock"):
                    continue
                src = folder / name
                st = os.stat(src)
                if self.manifest.unchanged(f"{rel}/{name}", st):
                    continue
                dst = self.req.shared / rel / name
                try:
                    target_mtime = os.stat(dst).st_mtime_ns
                except FileNotFoundError:
                    target_mtime = -1
                if st.st_mtime_ns > target_mtime:
                    fsops.makedirs(dst.parent)
                    try:
                        self._put(src, dst)
                    except StoreError:
                        self.stats.skipped += 1  # a listing uv can fetch again: keep the shared one
                        self.stats.details.append(f"kept (locked): {rel}/{name}")

    # -- anything else uv keeps (git checkouts, ...): whole entries two levels down, if missing.

    def _merge_other(self, bucket: str) -> None:
        src_bucket = self.req.job / bucket
        for top in sorted(os.listdir(src_bucket)):
            src_top = src_bucket / top
            if fsops.is_lock_or_temp(top):
                continue
            if not src_top.is_dir() or src_top.is_symlink():
                dst = self.req.shared / bucket / top
                if not os.path.lexists(dst):
                    fsops.makedirs(dst.parent)
                    self._put(src_top, dst)
                continue
            for entry in sorted(os.listdir(src_top)):
                if fsops.is_lock_or_temp(entry):
                    continue
                self._add_whole(src_top / entry, self.req.shared / bucket / top / entry)

    def _add_whole(self, src: Path, dst: Path) -> None:
        if os.path.lexists(dst):
            return
        fsops.makedirs(dst.parent)
        if not src.is_dir() or src.is_symlink():
            self._put(src, dst)
            return
        if self._stage_whole(src, dst, link=False):
            self.stats.entries += 1

    def _put(self, src: Path, dst: Path) -> None:
        """One file or link into the shared cache, atomically; absolute links retargeted to it."""
        fsops.put_file(src, dst, link_text=lambda text: retarget(text, self.req.job, self.req.shared))
        self.stats.files += 1
        self.stats.bytes += os.lstat(dst).st_size


def _group_valid(folder: Path, key: str) -> bool:
    """The shared cache already has this group, and its archive is there."""
    if not any((folder / name).exists() for name in group_pointers(key)):
        return False
    link = folder / key
    if not os.path.lexists(link):
        return True  # a group without a link (a `.rev` of a local file): the pointer is enough
    archive = linked_archive(link)
    cache_root = _cache_root_of(folder)
    return archive is None or cache_root is None or (cache_root / ARCHIVE_BUCKET / archive).is_dir()


def _cache_root_of(folder: Path) -> Path | None:
    for parent in (folder, *folder.parents):
        if bucket_kind(parent.name) in ("wheels", "sdists"):
            return parent.parent
    return None


def _keep_newest(folder: Path, keep: int) -> None:
    files = sorted((e.stat().st_mtime, e.path) for _rel, e in fsops.walk_files(folder))
    for _mtime, path in files[:-keep] if len(files) > keep else []:
        fsops.unlink(Path(path))
