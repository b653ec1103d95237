"""The invariants a merge must keep in a uv cache, and what fixing a broken one removes.

Errors (a reader could be hurt): a pointer naming a missing archive or revision, a dangling link.
Notes: several versions of one bucket (an older uv's leftovers that `uv cache prune` removes).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from ci_cache.tools.base import Finding, VerifyReport
from ci_cache.tools.uv.layout import (
    ARCHIVE_BUCKET,
    archive_ids,
    bucket_family,
    bucket_kind,
    first_id,
    folder_links,
    group_keys,
    group_members,
    group_pointer,
    linked_archive,
    sdist_pointer,
    walk_dirs,
)


def verify_cache(cache: Path) -> VerifyReport:
    """Check every pointer and link of the uv cache at `cache`."""
    report = VerifyReport(cache, checked={"pointers": 0, "archives": 0})
    versions: dict[str, list[str]] = defaultdict(list)
    for bucket in sorted(os.listdir(cache)) if cache.is_dir() else []:
        family = bucket_family(bucket)
        if family:
            versions[family].append(bucket)
        kind = bucket_kind(bucket)
        if kind == "wheels":
            _check_wheels(cache, bucket, report)
        elif kind == "sdists":
            _check_sdists(cache, bucket, report)
    report.checked["archives"] = len(archive_ids(cache))
    for name, found in versions.items():
        if len(found) > 1:
            report.findings.append(Finding("note", str(cache), f"{name} buckets of several uv versions: "
                                           f"{', '.join(sorted(found))}; `uv cache prune` removes the old ones"))
    return report


def _check_wheels(cache: Path, bucket: str, report: VerifyReport) -> None:
    for folder, rel, names in walk_dirs(cache / bucket, bucket):
        for key in group_keys(names):
            pointer = group_pointer(key, names)
            if pointer is None:
                continue
            report.checked["pointers"] += 1
            group = [folder / n for n in group_members(key) if n in names]
            archive = first_id((folder / pointer).read_bytes())
            if key in names:
                archive = linked_archive(folder / key) or archive
            if archive and not (cache / ARCHIVE_BUCKET / archive).is_dir():
                report.findings.append(Finding("error", f"{rel}/{pointer}",
                                               f"names archive {archive}, which does not exist", group))


def _check_sdists(cache: Path, bucket: str, report: VerifyReport) -> None:
    for folder, rel, names in walk_dirs(cache / bucket, bucket):
        for name, archive in folder_links(folder, names):
            if not (cache / ARCHIVE_BUCKET / archive).is_dir():
                report.findings.append(Finding("error", f"{rel}/{name}", f"links to missing archive {archive}",
                                               [folder / name]))
        pointer = sdist_pointer(names)
        if pointer is None:
            continue
        report.checked["pointers"] += 1
        revision = first_id((folder / pointer).read_bytes())
        if revision and not (folder / revision).is_dir():
            report.findings.append(Finding("error", f"{rel}/{pointer}",
                                           f"names revision {revision}, which does not exist", [folder / pointer]))
