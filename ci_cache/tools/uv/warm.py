"""Refreshing a warm job cache (a former job's, from the pool) into exactly what a fresh seed would make.

The seeder runs as for a fresh seed, but before it makes anything it asks here whether the thing is already
there as seeding would make it; if so it stays, else it is made anew. What seeding did not ask for, it
sweeps away at the end. So after a refresh the cache holds what a fresh seed would hold, nothing else:

- an archive stays only when its tree is the shared archive's, entry for entry: the same names, each file
  the very same file (a hardlink of the shared one: same inode; on Windows, where a listing carries no
  file id, the same size and mtime), each link the same text. A file the job replaced, added or deleted in
  it fails this (an archive uv never changes);
- a copied file (a pointer, metadata, an index page) stays only when it is a plain file of its own (one
  link) with the shared file's size, mtime and permission bits; uv rewrites these in place, and any write
  gives the file a new mtime, so a file the job changed is copied again. A merge copies the job's newer
  file into the shared cache with its mtime, so what the job merged back stays;
- a symlink stays only with the text seeding would give it, and a hardlinked interpreter query only when it
  is still the store's file;
- everything else (what the job added and never merged, temp dirs, builds, environments, lock files, an
  archive the shared cache has pruned) is swept: files deleted, dirs moved into a trash dir beside the
  cache, in the job's dir, which goes with that dir when the job finishes.

A job can defeat the mtime check only on purpose (a write, then the old mtime set back), which is why
only trusted jobs give their cache to the pool (`ci_cache.pool`): a trusted job can write to the
shared cache through the merge anyway.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ci_cache import fsops, osapi
from ci_cache.tools.uv.layout import ARCHIVE_BUCKET


class WarmCache:
    """The bookkeeping of one refresh: what seeding made or kept, by path relative to the job cache."""

    def __init__(self, job: Path) -> None:
        self.job = job
        self.files: set[str] = set()
        self.dirs: set[str] = {""}
        self.kept_files = 0
        self.kept_archives = 0
        self._trash: Path | None = None
        self._trashed = 0

    def made_dir(self, rel: str) -> None:
        """A dir seeding makes, with its parents: each stays, and what it holds is looked at. Whatever is in
        the way of one (a file, or a link, which seeding would follow out of the cache) is cleared first."""
        todo = []
        while rel not in self.dirs:
            todo.append(rel)
            rel = rel.rpartition("/")[0]
        for rel in reversed(todo):  # from the top down
            path = self.job / rel
            if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                self.clear(path)
            self.dirs.add(rel)

    def made_file(self, rel: str) -> None:
        self.made_dir(rel.rpartition("/")[0])
        self.files.add(rel)

    def keeps_copy(self, src: os.stat_result, dst: Path) -> os.stat_result | None:
        """The stat of `dst` when it can stay as the copy of a file with stat `src`; else None, with what was
        in the way cleared."""
        try:
            st = os.lstat(dst)
        except FileNotFoundError:
            return None
        if (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_size == src.st_size
                and st.st_mtime_ns == src.st_mtime_ns and stat.S_IMODE(st.st_mode) == stat.S_IMODE(src.st_mode)):
            self.kept_files += 1
            return st
        self.clear(dst)
        return None

    def keeps_hardlink(self, src: os.stat_result, dst: Path) -> bool:
        """True when `dst` is the very file with stat `src` (a hardlink of it); else False, with what was in
        the way cleared."""
        try:
            st = os.lstat(dst)
        except FileNotFoundError:
            return False
        if stat.S_ISREG(st.st_mode) and (st.st_ino, st.st_dev) == (src.st_ino, src.st_dev):
            return True
        self.clear(dst)
        return False

    def keeps_link(self, text: str, dst: Path) -> bool:
        """True when `dst` is a symlink holding `text`; else False, with what was in the way cleared."""
        try:
            if os.readlink(dst) == text:
                return True
        except FileNotFoundError:
            return False
        except OSError:
            pass  # not a link
        self.clear(dst)
        return False

    def keeps_archive(self, src: Path, dst: Path) -> int | None:
        """How many files the archive at `dst` holds, when it is the shared archive `src` linked entry for
        entry; else None, with it moved away."""
        if not os.path.lexists(dst):
            return None
        files = same_links(src, dst)
        if files is None:
            self.clear(dst)
        else:
            self.kept_archives += 1
        return files

    def clear(self, path: Path) -> None:
        """Take away whatever is at `path`: a file or link deleted, a dir moved into the trash."""
        if os.path.isdir(path) and not os.path.islink(path):
            trash = self._trash_dir()
            self._trashed += 1
            fsops.replace(path, trash / str(self._trashed))
        elif os.path.lexists(path):
            fsops.unlink(path)

    def sweep(self, archives: set[str]) -> None:
        """Take away everything seeding neither made nor kept; archives by the final set of `archives`."""
        stack = [("", str(self.job))]
        while stack:
            rel, full = stack.pop()
            with os.scandir(full) as it:
                entries = list(it)
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if child == ARCHIVE_BUCKET and child in self.dirs:
                        for archive in os.listdir(entry.path):
                            if archive not in archives:
                                self.clear(Path(entry.path, archive))
                    elif child in self.dirs:
                        stack.append((child, entry.path))
                    else:
                        self.clear(Path(entry.path))
                elif child not in self.files:
                    fsops.unlink(Path(entry.path))

    def _trash_dir(self) -> Path:
        """Beside the job cache, in the job's dir, which finish deletes (or gc, for a job that died): no
        delete of its own, since starting a process costs the job more than the delete (on Windows, 0.1 s
        and up; under Wine, most of a warm seed's second)."""
        if self._trash is None:
            self._trash = fsops.temp_sibling(self.job)
            fsops.mkdir(self._trash)
        return self._trash


def same_links(src: Path, dst: Path) -> int | None:
    """The number of files in `dst` when its tree is `src`'s with every file hardlinked (the same inode) and
    every link the same text; None when anything differs.

    Directory listings only: the file's identity is what the listing carries (`osapi.listed_as_same_file`)."""
    files = 0
    top = (osapi.extended_path(src, always=True), osapi.extended_path(dst, always=True))
    try:
        if os.stat(top[0]).st_dev != os.stat(top[1]).st_dev:
            return None
        stack = [top]
        while stack:
            a_dir, b_dir = stack.pop()
            with os.scandir(a_dir) as it:
                a_entries = {e.name: e for e in it}
            with os.scandir(b_dir) as it:
                b_entries = {e.name: e for e in it}
            if a_entries.keys() != b_entries.keys():
                return None
            for name, a in a_entries.items():
                b = b_entries[name]
                if a.is_symlink() or b.is_symlink():
                    if not (a.is_symlink() and b.is_symlink() and os.readlink(a.path) == os.readlink(b.path)):
                        return None
                elif a.is_dir(follow_symlinks=False):
                    if not b.is_dir(follow_symlinks=False):
                        return None
                    stack.append((a.path, b.path))
                elif b.is_dir(follow_symlinks=False) or not osapi.listed_as_same_file(a, b):
                    return None
                else:
                    files += 1
    except OSError:
        return None
    return files
