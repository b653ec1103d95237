"""Seeding a job's uv cache from the shared one: archives linked, everything uv may rewrite copied.

A warm request (`SeedRequest.warm`: the job cache is a former job's, from the pool) is refreshed in place
instead: the same walk, keeping what is already there as this seed would make it (`warm.WarmCache`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ci_cache import fsops, log, osapi
from ci_cache.errors import CiCacheError
from ci_cache.tools.base import SeedRequest, SeedStats
from ci_cache.tools.uv.layout import (
    ARCHIVE_BUCKET,
    archive_id_of_link,
    bucket_kind,
    hold_root_lock,
    interpreter_store,
    may_be_link,
    retarget,
)
from ci_cache.tools.uv.manifest import Manifest

if TYPE_CHECKING:
    from ci_cache.tools.uv.warm import WarmCache


class Seeder:
    """One seeding: the whole shared cache, or only what the named packages need."""

    def __init__(self, request: SeedRequest) -> None:
        self.req = request
        self.stats = SeedStats(scope="full" if request.packages is None else "key files")
        self.manifest = Manifest()
        self.archives_wanted: set[str] = set()
        # Metadata copies wait here so that they run while `cp -al` links the archives.
        self.copies: list[tuple[Path, Path, str]] = []
        self.warm: WarmCache | None = None
        if request.warm:
            from ci_cache.tools.uv.warm import WarmCache

            self.warm = WarmCache(request.job)

    def run(self) -> SeedStats:
        shared, job = self.req.shared, self.req.job
        fsops.makedirs(job)
        if shared.is_dir():
            with hold_root_lock(shared):
                buckets = sorted(os.listdir(shared))
                names = self.req.packages
                if names is None:
                    self._seed_everything(buckets)
                else:
                    self._seed_packages(buckets, set(names))
            self._seed_interpreters()
        if self.warm is not None:
            self.warm.sweep(self.manifest.archives)
            self.stats.kept += self.warm.kept_files
            self.stats.warm = True
        self.manifest.save(self.req.manifest)
        return self.stats

    def _dir(self, path: Path, rel: str) -> None:
        """Make a dir of the job cache (`rel` relative to it)."""
        if self.warm is not None:
            self.warm.made_dir(rel)
        fsops.makedirs(path)

    def _seed_interpreters(self) -> None:
        """Link the interpreter queries other jobs made, so uv need not run each Python again.

        Linked, not copied: uv rewrites a query by writing a new file and renaming it over the old one
        (measured with uv 0.13.8: a re-query gives the entry a new inode and leaves a link to the old one
        as it was), so a job never writes through its link into the store. A link costs a directory
        entry; a copy costs a file (30 times as long under Wine, and a new file for a scanner).
        """
        store = interpreter_store(self.req.shared)
        if not store.is_dir():
            return
        for rel, entry in fsops.walk_files(store):
            if bucket_kind(rel.split("/", 1)[0]) == "interpreter" and not fsops.is_lock_or_temp(entry.name):
                target = self.req.job / rel
                self._dir(target.parent, rel.rpartition("/")[0])
                st = entry.stat(follow_symlinks=False)  # a link's, or the copy's: same size and mtime
                if self.warm is not None:
                    self.warm.made_file(rel)
                if self.warm is not None and self.warm.keeps_hardlink(st, target):
                    self.stats.linked += 1
                    self.stats.kept += 1
                elif fsops.link_or_copy(Path(entry.path), target, link=self.req.link):
                    self.stats.linked += 1
                else:
                    self.stats.copied += 1
                    self.stats.bytes += st.st_size
                self.manifest.files[rel] = (st.st_size, st.st_mtime_ns)
                self.stats.files += 1

    def _seed_everything(self, buckets: list[str]) -> None:
        for bucket in buckets:
            kind = bucket_kind(bucket)
            if kind in ("wheels", "sdists", "index", "other"):
                self._copy_meta(self.req.shared / bucket, self.req.job / bucket, bucket, kind)
        self._seed_archives(self.archives_wanted)
        self._flush_copies()

    def _seed_packages(self, buckets: list[str], wanted: set[str]) -> None:
        """Seed only what the named packages need, following their Requires-Dist to a closure."""
        done: set[str] = set()
        first = True
        while wanted:
            for bucket in buckets:
                kind = bucket_kind(bucket)
                if kind in ("wheels", "sdists"):
                    self._seed_named_dirs(bucket, kind, wanted, include_unnamed=first)
                elif kind == "index":
                    self._seed_named_index(bucket, wanted, include_unnamed=first)
                elif kind == "other" and first:
                    self._copy_meta(self.req.shared / bucket, self.req.job / bucket, bucket, kind)
            fresh = self.archives_wanted - self.manifest.archives
            self._seed_archives(fresh)
            self._flush_copies()
            done |= wanted
            wanted = {dep for archive in fresh for dep in _requires(self.req.job / ARCHIVE_BUCKET / archive)}
            wanted -= done
            first = False

    def _seed_named_dirs(self, bucket: str, kind: str, names: set[str], *, include_unnamed: bool) -> None:
        """`<bucket>/pypi/<name>` and `<bucket>/index/<hash>/<name>`; url/path/git entries once, whole."""
        for rel in _named_dirs(self.req.shared / bucket, names, include_unnamed=include_unnamed):
            src = self.req.shared / bucket / rel
            if src.is_dir():
                self._copy_meta(src, self.req.job / bucket / rel, f"{bucket}/{rel}", kind)

    def _seed_named_index(self, bucket: str, names: set[str], *, include_unnamed: bool) -> None:
        base = self.req.shared / bucket
        for rel in _named_dirs(base, set(), include_unnamed=True):
            folder = base / rel
            if not folder.is_dir():
                continue
            if include_unnamed and not rel.startswith(("pypi", "index/")):
                self._copy_meta(folder, self.req.job / bucket / rel, f"{bucket}/{rel}", "index")
                continue
            for name in names:
                src = folder / f"{name}.rkyv"
                if src.exists():
                    dst = self.req.job / bucket / rel / src.name
                    self._dir(dst.parent, f"{bucket}/{rel}")
                    self._copy_file(src, dst, f"{bucket}/{rel}/{src.name}")

    def _copy_meta(self, src: Path, dst: Path, rel: str, kind: str) -> None:
        """Copy a metadata tree and recreate its links; collect the archives the links name."""
        self._dir(dst, rel)
        with os.scandir(src) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            if fsops.is_lock_or_temp(name):
                continue
            child_rel = f"{rel}/{name}"
            target = dst / name
            if entry.is_symlink():
                archive = archive_id_of_link(entry.path, is_symlink=True)
                if archive:
                    self.archives_wanted.add(archive)
                text = retarget(os.readlink(entry.path), self.req.shared, self.req.job)
                if self.warm is not None:
                    self.warm.made_file(child_rel)
                    if self.warm.keeps_link(text, target):
                        continue
                if not os.path.lexists(target):
                    fsops.symlink(text, target)
            elif entry.is_dir(follow_symlinks=False):
                self._copy_meta(Path(entry.path), target, child_rel, kind)
            else:
                if kind in ("wheels", "sdists") and may_be_link(name):
                    archive = archive_id_of_link(entry.path, is_symlink=False)
                    if archive:
                        self.archives_wanted.add(archive)
                # Everything outside archive-v0 is copied, built wheels included: only archives are
                # immutable by uv's contract, and a build backend may reopen its wheel for writing.
                if not self._kept_copy(entry, target, child_rel):
                    self.copies.append((Path(entry.path), target, child_rel))

    def _copy_file(self, src: Path, dst: Path, rel: str) -> None:
        if not self._kept_copy(src, dst, rel):
            self.copies.append((src, dst, rel))

    def _kept_copy(self, src: Path | os.DirEntry[str], dst: Path, rel: str) -> bool:
        """Warm: True when the job cache has `dst` as this copy of `src` would make it (it is recorded as if
        copied now); else whatever is in its way is cleared for the copy."""
        if self.warm is None:
            return False
        self.warm.made_file(rel)
        src_stat = src.stat(follow_symlinks=False) if isinstance(src, os.DirEntry) else os.stat(src)
        kept = self.warm.keeps_copy(src_stat, dst)
        if kept is None:
            return False
        self.manifest.files[rel] = (kept.st_size, kept.st_mtime_ns)
        self.stats.files += 1
        self.stats.copied += 1
        return True

    def _flush_copies(self) -> None:
        copies, self.copies = self.copies, []
        for src, dst, rel in copies:
            self._copy_now(src, dst, rel)

    def _copy_now(self, src: Path, dst: Path, rel: str) -> None:
        fsops.copy_file(src, dst)
        st = os.stat(dst)
        self.manifest.files[rel] = (st.st_size, st.st_mtime_ns)
        self.stats.files += 1
        self.stats.copied += 1
        self.stats.bytes += st.st_size

    def _seed_archives(self, ids: Iterable[str]) -> None:
        archive_src = self.req.shared / ARCHIVE_BUCKET
        archive_dst = self.req.job / ARCHIVE_BUCKET
        self._dir(archive_dst, ARCHIVE_BUCKET)
        wanted = [a for a in sorted(ids) if a not in self.manifest.archives and (archive_src / a).is_dir()]
        todo = []
        for archive in wanted:
            kept = self.warm.keeps_archive(archive_src / archive, archive_dst / archive) if self.warm else None
            if kept is not None:
                self.stats.files += kept
                self.stats.linked += kept
                self.stats.kept += kept
                self.stats.entries += 1
                self.manifest.archives.add(archive)
            elif not (archive_dst / archive).exists():
                todo.append(archive)
        count = self._link_archives(todo, archive_src, archive_dst)
        self.stats.files += count.files
        self.stats.bytes += count.bytes
        self.stats.linked += count.linked
        self.stats.copied += count.files - count.linked
        self.stats.entries += len(todo)
        self.manifest.archives.update(todo)
        if self.req.packages is not None:
            # The job named what it needs (key files): the archive's folder mtime records this use,
            # for `ci-cache prune`'s LRU order. A full seed says nothing about use.
            for archive in wanted:
                with contextlib.suppress(OSError, CiCacheError):
                    fsops.touch(archive_src / archive)

    def _link_archives(self, todo: list[str], archive_src: Path, archive_dst: Path) -> fsops.TreeCount:
        """Link the archives in bulk with `cp -al` where the system has it, copying the metadata
        meanwhile; else (Windows, or if cp fails) in Python."""
        if self.req.link:
            procs = osapi.start_bulk_link([str(archive_src / a) for a in todo], str(archive_dst))
            if procs is not None:
                try:
                    self._flush_copies()  # on this core, while cp works on another
                    count = fsops.TreeCount(files=sum(_count_files(archive_src / a) for a in todo))
                    count.linked = count.files
                finally:
                    failed = [p for p in procs if p.wait() != 0]  # never leave cp writing behind us
                if not failed:
                    return count
                errors = b"".join(p.stderr.read() if p.stderr else b"" for p in failed).decode(errors="replace")
                log.warn(f"cp -al failed ({errors.strip()[-200:]}); linking in Python instead")
                for archive in todo:
                    fsops.rmtree(archive_dst / archive)
        return self._clone_archives(todo, archive_src, archive_dst)

    def _clone_archives(self, archives: list[str], archive_src: Path, archive_dst: Path) -> fsops.TreeCount:
        count = fsops.TreeCount()
        for archive in archives:
            fsops.clone_tree(archive_src / archive, archive_dst / archive, link=self.req.link, count=count)
        return count


def _count_files(top: Path) -> int:
    """Files below `top` (not dirs), from directory entries alone: no stat calls."""
    files = 0
    stack = [str(top)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    files += 1
    return files


def _named_dirs(bucket: Path, names: set[str], *, include_unnamed: bool) -> Iterator[str]:
    """Relative dirs under a wheels/sdists/simple bucket: the named packages' dirs and, when asked,
    the dirs that are not keyed by name (direct URLs, paths, git)."""
    try:
        kinds = sorted(os.listdir(bucket))
    except FileNotFoundError:
        return
    for kind in kinds:
        if kind.startswith(".") or not (bucket / kind).is_dir():
            continue
        if kind == "pypi":
            if not names:
                yield kind
            yield from (f"pypi/{n}" for n in sorted(names))
        elif kind == "index":
            for index_hash in sorted(os.listdir(bucket / kind)):
                if not names:
                    yield f"index/{index_hash}"
                yield from (f"index/{index_hash}/{n}" for n in sorted(names))
        elif include_unnamed:
            yield kind


def _requires(archive: Path) -> set[str]:
    """Names in the Requires-Dist of the wheel unpacked at `archive`."""
    from ci_cache.keyfiles import normalize

    names: set[str] = set()
    try:
        infos = [e for e in os.scandir(archive) if e.name.endswith(".dist-info")]
    except OSError:
        return names
    for info in infos:
        try:
            text = Path(info.path, "METADATA").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.strip():
                break  # the body follows the headers
            if line.startswith("Requires-Dist:"):
                match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line[len("Requires-Dist:"):])
                if match:
                    names.add(normalize(match.group(1)))
    return names
