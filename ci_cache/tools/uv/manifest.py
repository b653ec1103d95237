"""What seeding put into a job's uv cache, saved beside it so that merge takes only what differs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ci_cache import fsops


class Manifest:
    """The archives seeded, and each copied file's size and mtime as seeding left them."""

    def __init__(self, archives: set[str] | None = None, files: dict[str, tuple[int, int]] | None = None) -> None:
        self.archives: set[str] = set() if archives is None else archives
        self.files: dict[str, tuple[int, int]] = {} if files is None else files

    def unchanged(self, rel: str, stat: os.stat_result) -> bool:
        return self.files.get(rel) == (stat.st_size, stat.st_mtime_ns)

    def save(self, path: Path) -> None:
        data = {"archives": sorted(self.archives), "files": {k: list(v) for k, v in self.files.items()}}
        fsops.write_atomic(path, json.dumps(data).encode(), durable=False)  # the job's, as long as it lives

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cls()
        return cls(set(data.get("archives", ())), {k: (v[0], v[1]) for k, v in data.get("files", {}).items()})
