"""`ci-cache verify`: check a uv cache against the invariants a merge must keep, and repair what is
provably broken.

Errors (a reader could be hurt): a pointer naming a missing archive or revision, a dangling link.
Garbage (harmless, reclaimable): leftover temp dirs of interrupted merges or killed uv processes.
Notes: several versions of one bucket (an older uv's leftovers that `uv cache prune` removes).
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ci_cache import fsops, osapi
from ci_cache.tools.uv import (
    ARCHIVE_BUCKET,
    POINTER_SUFFIXES,
    SDIST_POINTERS,
    archive_id_of_link,
    bucket_kind,
    group_keys,
    walk_dirs,
)

_ID = re.compile(rb"^[A-Za-z0-9_-]{8,32}$")


@dataclass
class Finding:
    kind: str  # "error", "garbage" or "note"
    path: str
    problem: str
    fix: list[Path] = field(default_factory=list)  # what --fix removes


@dataclass
class Report:
    cache: Path
    findings: list[Finding] = field(default_factory=list)
    checked_pointers: int = 0
    checked_archives: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def first_id(data: bytes) -> str | None:
    """The first archive-id-like msgpack string in a pointer file: what uv installs from."""
    i = 0
    while i < len(data):
        b = data[i]
        length, start = -1, i + 1
        if 0xA0 <= b <= 0xBF:
            length = b & 0x1F
        elif b == 0xD9 and i + 1 < len(data):
            length, start = data[i + 1], i + 2
        if length > 0:
            chunk = data[start:start + length]
            if _ID.match(chunk):
                return chunk.decode()
            i = start + length
            continue
        i += 1
    return None


def check(cache: Path, *, grace: float = 3600.0, now: float | None = None) -> Report:
    now = time.time() if now is None else now
    report = Report(cache)
    if not cache.is_dir():
        report.findings.append(Finding("error", str(cache), "no cache here"))
        return report
    buckets = sorted(os.listdir(cache))
    versions: dict[str, list[str]] = defaultdict(list)
    for bucket in buckets:
        match = re.match(r"^([a-z-]+)-v\d+$", bucket)
        if match:
            versions[match.group(1)].append(bucket)
        kind = bucket_kind(bucket)
        if kind == "wheels":
            _check_wheels(cache, bucket, report)
        elif kind == "sdists":
            _check_sdists(cache, bucket, report)
    archive_dir = cache / ARCHIVE_BUCKET
    if archive_dir.is_dir():
        report.checked_archives = sum(1 for n in os.listdir(archive_dir) if not fsops.is_temp_name(n))
    for name, found in versions.items():
        if len(found) > 1:
            report.findings.append(Finding("note", str(cache), f"{name} buckets of several uv versions: "
                                           f"{', '.join(sorted(found))}; `uv cache prune` removes the old ones"))
    _check_temp(cache, report, grace=grace, now=now)
    return report


def _check_wheels(cache: Path, bucket: str, report: Report) -> None:
    for folder, rel, names in walk_dirs(cache / bucket, bucket):
        for key in group_keys(names):
            pointer = next(key + s for s in POINTER_SUFFIXES if key + s in names)
            report.checked_pointers += 1
            group = [folder / n for n in (key + ".http", key + ".rev", key + ".msgpack", key) if n in names]
            archive = first_id((folder / pointer).read_bytes())
            if key in names:
                link = folder / key
                linked = archive_id_of_link(str(link), is_symlink=link.is_symlink())
                archive = linked or archive
            if archive and not (cache / ARCHIVE_BUCKET / archive).is_dir():
                report.findings.append(Finding("error", f"{rel}/{pointer}",
                                               f"names archive {archive}, which does not exist", group))


def _check_sdists(cache: Path, bucket: str, report: Report) -> None:
    for folder, rel, names in walk_dirs(cache / bucket, bucket):
        for name in names:
            path = folder / name
            if path.is_symlink():
                target = archive_id_of_link(str(path), is_symlink=True)
                if target and not (cache / ARCHIVE_BUCKET / target).is_dir():
                    report.findings.append(Finding("error", f"{rel}/{name}", f"links to missing archive {target}",
                                                   [path]))
        pointer = next((p for p in SDIST_POINTERS if p in names), None)
        if pointer is None:
            continue
        report.checked_pointers += 1
        revision = first_id((folder / pointer).read_bytes())
        if revision and not (folder / revision).is_dir():
            report.findings.append(Finding("error", f"{rel}/{pointer}",
                                           f"names revision {revision}, which does not exist", [folder / pointer]))


def _check_temp(cache: Path, report: Report, *, grace: float, now: float) -> None:
    """Temp dirs at the root and in each bucket: an interrupted merge or a killed uv left them."""
    writer = cache.parent / f"{cache.name}.write.lock"
    nobody_writing = False
    handle = osapi.try_lock(writer) if writer.exists() else None
    if handle is not None:
        nobody_writing = True
        handle.release()
    for entry in [*os.scandir(cache), *(e for b in os.scandir(cache) if b.is_dir(follow_symlinks=False)
                                        and not fsops.is_temp_name(b.name) for e in os.scandir(b.path))]:
        if not fsops.is_temp_name(entry.name):
            continue
        ours = entry.name.startswith(fsops.TEMP_PREFIX)
        old = now - entry.stat(follow_symlinks=False).st_mtime >= grace
        fixable = [Path(entry.path)] if (ours and nobody_writing) or old else []
        report.findings.append(Finding("garbage", os.path.relpath(entry.path, cache),
                                       "leftover temp dir" + ("" if fixable else " (may be in use; kept)"),
                                       fixable))


def fix(report: Report) -> int:
    """Remove what is provably broken or garbage. Never a valid entry. Returns how many were removed."""
    removed = 0
    for finding in report.findings:
        for path in finding.fix:
            if os.path.lexists(path):
                if path.is_dir() and not path.is_symlink():
                    fsops.rmtree(path)
                else:
                    fsops.unlink(path)
                removed += 1
    return removed


def render(report: Report) -> str:
    lines = [f"{report.cache}: {report.checked_pointers} pointers, {report.checked_archives} archives checked"]
    for f in report.findings:
        lines.append(f"  {f.kind}: {f.path}: {f.problem}")
    lines.append("  OK" if report.ok else f"  {len(report.errors)} error(s); `ci-cache verify --fix` repairs them")
    return "\n".join(lines)
