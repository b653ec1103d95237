"""Caches ci-cache knows nothing special about (pip, user-defined tools): add what is missing, per file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from ci_cache import fsops
from ci_cache.tools import base


def _skip(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return fsops.is_lock_or_temp(name) or any(fsops.is_temp_name(part) for part in rel.split("/"))


class GenericTool:
    """A cache whose files are never rewritten in place once written (pip's are, by temp + rename).

    Seeding links or copies every file; merging adds the files the job created that the shared cache
    lacks, each one atomically. Nothing is ever replaced in the shared cache; only prune deletes, file by
    file, least recently used first.
    """

    has_shared_cache = True
    own_lock: str | None = None
    keeps_warm = False

    def __init__(self, name: str, env_template: Mapping[str, str], *, commands: tuple[str, ...] = (),
                 merge: str = "add_missing", seed: str | None = None) -> None:
        self.name = name
        self.env_template = dict(env_template)
        self.commands = commands
        self.merge_policy = merge
        self.seed_override = seed

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        return {k: v.replace("{dir}", str(cache_dir)) for k, v in self.env_template.items()}

    def seed(self, request: base.SeedRequest) -> base.SeedStats:
        stats = base.SeedStats()
        fsops.makedirs(request.job)
        manifest: dict[str, list[int]] = {}
        link = request.link if self.seed_override is None else self.seed_override == "link"
        if self.seed_override != "none" and request.shared.is_dir():
            for rel, entry in fsops.walk_files(request.shared):
                if _skip(rel) or entry.is_symlink():
                    continue
                dst = request.job / rel
                fsops.makedirs(dst.parent)
                linked = fsops.link_or_copy(Path(entry.path), dst, link=link)
                st = os.stat(dst)
                manifest[rel] = [st.st_size, st.st_mtime_ns]
                stats.files += 1
                stats.bytes += 0 if linked else st.st_size  # a link takes no space: copies only
                stats.linked += int(linked)
                stats.copied += int(not linked)
        fsops.write_atomic(request.manifest, json.dumps(manifest).encode(), durable=False)  # the job's own
        return stats

    def merge(self, request: base.MergeRequest) -> base.MergeStats:
        stats = base.MergeStats()
        if self.merge_policy == "never" or not request.job.is_dir():
            return stats
        try:
            seeded = json.loads(request.manifest.read_bytes())
        except (OSError, ValueError):
            seeded = {}
        for rel, entry in fsops.walk_files(request.job):
            if _skip(rel) or entry.is_symlink() or rel in seeded:
                continue
            dst = request.shared / rel
            if dst.exists():
                stats.kept_existing += 1
                continue
            fsops.makedirs(dst.parent)
            if fsops.put_file(Path(entry.path), dst, overwrite=False):
                stats.files += 1
                stats.entries += 1
                stats.bytes += os.stat(dst).st_size
        return stats

    def prune(self, request: base.PruneRequest) -> base.PruneReport:
        """Least recently used files first (by the later of access and modification time)."""
        now = time.time() if request.now is None else request.now
        report = base.PruneReport(self.name)
        files = []
        for _rel, entry in fsops.walk_files(request.cache):
            st = entry.stat(follow_symlinks=False)
            files.append((max(st.st_atime, st.st_mtime), st.st_size, Path(entry.path)))
        total = sum(size for _, size, _ in files)
        report.bytes_before = total
        for used, size, path in sorted(files):
            too_old = request.max_age is not None and now - used > request.max_age
            if too_old or (request.max_size is not None and total > request.max_size):
                fsops.unlink(path)
                total -= size
                report.evicted_files += 1
        report.bytes_after = total
        return report

    def verify(self, cache: Path) -> base.VerifyReport:
        """Nothing to check: a file is whole by the way it is written, and no file names another."""
        return base.VerifyReport(cache)

    def remote(self, env: Mapping[str, str]) -> base.RemoteCodec | None:
        """No fleet tier: ci-cache cannot tell which of these files a job needs, nor key them by content."""
        return None


class TempTool:
    """TEMP, TMP and TMPDIR: a private temp dir per job, and no shared cache to seed from, merge into,
    prune or verify."""

    name = "temp"
    commands: tuple[str, ...] = ()
    has_shared_cache = False
    own_lock: str | None = None
    keeps_warm = False

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        return dict.fromkeys(("TEMP", "TMP", "TMPDIR"), str(cache_dir))

    def seed(self, request: base.SeedRequest) -> base.SeedStats:
        fsops.makedirs(request.job)
        return base.SeedStats(scope="none")

    def merge(self, request: base.MergeRequest) -> base.MergeStats:
        return base.MergeStats()

    def prune(self, request: base.PruneRequest) -> base.PruneReport:
        return base.PruneReport(self.name, notes=["no shared cache: nothing to prune"])

    def verify(self, cache: Path) -> base.VerifyReport:
        return base.VerifyReport(cache)

    def remote(self, env: Mapping[str, str]) -> base.RemoteCodec | None:
        """No shared cache, so nothing to share with other agents."""
        return None
