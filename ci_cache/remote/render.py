"""The human reports of `ci-cache remote status|verify|gc|push`."""

from __future__ import annotations

from ci_cache.remote.ops import GcReport, Status, VerifyReport
from ci_cache.remote.progress import human_bytes
from ci_cache.remote.reports import PushReport


def status(result: Status) -> str:
    lines = [f"{result.where}: {result.objects} objects, {human_bytes(result.bytes)}",
             f"  blobs: {result.blobs} ({human_bytes(result.blob_bytes)})",
             f"  entries: {sum(result.entries.values())} ({human_bytes(result.entry_bytes)})"]
    lines += [f"    {version}: {count}" for version, count in result.entries_by_version.items()]
    days = f", {result.used_days[0]} to {result.used_days[-1]}" if result.used_days else ""
    lines.append(f"  used marks: {result.used_marks}{days}")
    if result.other_objects:
        lines.append(f"  other objects (not ci-cache's, or another layout version): {result.other_objects}")
    return "\n".join(lines)


def verify(report: VerifyReport) -> str:
    lines = [f"{report.where}: {report.entries} entries, {report.blobs_referenced} blobs they name "
             f"({report.blobs_hashed} re-hashed)"]
    if report.unreferenced_blobs:
        lines.append(f"  garbage: {report.unreferenced_blobs} blobs no entry names (an interrupted push, or "
                     "entries gc deleted); `ci-cache remote gc` reclaims them after remote.gc_grace")
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  deleted: {key}" for key in report.fixed]
    if report.fixed:
        lines.append(f"  fixed: {len(report.fixed)} objects deleted; the next push of the same content "
                     "publishes it again")
    elif report.problems:
        lines.append(f"  {len(report.problems)} problem(s); `ci-cache remote verify --fix` deletes the broken "
                     "entries and blobs (with the gc credential)")
    else:
        lines.append("  OK")
    return "\n".join(lines)


def gc(report: GcReport) -> str:
    would = "would delete" if report.dry_run else "deleted"
    lines = [f"{report.where}: {would} {len(report.entries_deleted)} entries, {report.blobs_deleted} blobs "
             f"({human_bytes(report.bytes_freed)}) and {report.marks_deleted} used marks; kept "
             f"{report.entries_kept} entries and {report.blobs_kept} blobs"]
    lines += [f"  entry: {name}" for name in report.entries_deleted[:50]]
    if len(report.entries_deleted) > 50:
        lines.append(f"  ... and {len(report.entries_deleted) - 50} more")
    return "\n".join(lines)


def push(tool: str, report: PushReport) -> str:
    lines = [f"{tool}: {report.entries} entries in the cache: {report.entries_pushed} pushed "
             f"({report.blobs_pushed} blobs, {human_bytes(report.bytes)}), {report.entries_present} already there, "
             f"in {report.seconds:.1f}s"]
    if report.skipped:
        lines.append(f"  {len(report.skipped)} not shareable, e.g. {report.skipped[0]}")
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
