"""Where things live under the root: shared caches, job dirs, their leases and records, lock files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_cache import fsops
from ci_cache.errors import StoreError

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


@dataclass(frozen=True)
class Store:
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

    def record(self, key: str) -> Path:
        return self.jobs_dir / f"{key}.json"

    @property
    def gc_stamp(self) -> Path:
        return self.root / "gc.stamp"

    def ensure(self) -> None:
        """Create the root skeleton, or say clearly why it cannot be."""
        try:
            for folder in (self.root, self.shared_dir, self.jobs_dir):
                folder.mkdir(parents=True, exist_ok=True)
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                fsops.write_atomic(tag, CACHEDIR_TAG.encode())
            probe = fsops.temp_sibling(self.jobs_dir / "probe")
            probe.write_bytes(b"")
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"the ci-cache root {self.root} is not usable: {exc.strerror or exc}",
                hint="set `root:` in ci-cache.yml or CI_CACHE_ROOT to a writable folder with free space",
            ) from exc

    def job_keys(self) -> list[str]:
        """Every job that has a record, a lease or a dir."""
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            return []
        keys = {n.split(".", 1)[0] for n in names if not fsops.is_temp_name(n)}
        return sorted(keys)

    def read_record(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_record(self, key: str, record: dict[str, Any]) -> None:
        fsops.write_atomic(self.record(key), json.dumps(record, indent=2, sort_keys=True).encode())
