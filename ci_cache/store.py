"""Where things live under the root: shared caches, job dirs, their leases and records, lock files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ci_cache import faults, fsops, log

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by ci-cache.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


def beside(cache: Path, what: str) -> Path:
    """A file or folder kept beside a shared cache, never inside it; the dot in its name keeps it out of
    `Store.shared_tools()`."""
    return cache.parent / f"{cache.name}.{what}"


def write_lock_of(cache: Path) -> Path:
    """ci-cache's own lock for writers of the shared cache at `cache` (merges, shared-mode commands)."""
    return beside(cache, "write.lock")


class Store(NamedTuple):
    """The layout of one ci-cache root.

    Lock, lease and record files sit beside what they guard, never inside a folder that gets
    replaced or deleted.
    """

    root: Path

    @property
    def shared_dir(self) -> Path:
        return self.root / "shared"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def shared_cache(self, tool: str) -> Path:
        return self.shared_dir / tool

    def shared_tools(self) -> list[str]:
        """The tools that have a shared cache here (not the side stores, such as `uv.interpreters`)."""
        try:
            names = os.listdir(self.shared_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if "." not in n and (self.shared_dir / n).is_dir())

    def write_lock(self, tool: str) -> Path:
        return write_lock_of(self.shared_cache(tool))

    def job_dir(self, key: str) -> Path:
        return self.jobs_dir / key

    def lease(self, key: str) -> Path:
        return self.jobs_dir / f"{key}.lease"

    @property
    def gc_stamp(self) -> Path:
        return self.root / "gc.stamp"

    @property
    def layout_file(self) -> Path:
        """The root's layout version and the ci-cache that wrote it (`rootlayout`)."""
        return self.root / "layout.json"

    @property
    def layout_lock(self) -> Path:
        """Held shared by every process using the root, exclusive by a migration (`rootlayout`)."""
        return self.root / "layout.lock"

    def ensure(self, *, probe: bool = True) -> None:
        """Create the root skeleton and prove it writable, or say what really stops it (a full disk, a
        read-only file system, a permission, a file in the way) and what to do.

        The probe file proves the write; deleting it is only tidying. When a scanner or another process
        holds it, it stays for gc (a temp name) rather than making the job wait or run unprotected.
        `probe=False`: the caller's own first writes prove it, and say what stops them just as clearly.
        """
        try:
            for folder in (self.root, self.shared_dir, self.jobs_dir):
                fsops.makedirs(folder)
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                fsops.write_atomic(tag, CACHEDIR_TAG.encode())
            if not probe:
                return
            probe_file = fsops.temp_sibling(self.jobs_dir / "probe")
            fsops.write_new(probe_file, b"ci-cache probe\n")
        except OSError as exc:
            raise faults.store_error(exc, self.root, f"the ci-cache root {self.root} is not usable") from exc
        try:
            fsops.discard(probe_file)
        except OSError as exc:
            log.info(f"could not delete the probe file {probe_file} ({exc.strerror or exc}); gc deletes it later")

    def job_keys(self) -> list[str]:
        """Every job that has a record, a lease or a dir."""
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            return []
        keys = {n.split(".", 1)[0] for n in names if not fsops.is_temp_name(n)}
        return sorted(keys)
