"""`ci-cache verify`: check a shared cache against the invariants a merge must keep, and repair what
is provably broken.

The tool checks its own invariants (`CacheTool.verify`: for uv, pointers and links); every cache is
checked here for the temp dirs that interrupted merges or killed tool processes left (garbage:
harmless, reclaimable).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ci_cache import fsops, gc
from ci_cache.tools.base import CacheTool, Finding, VerifyReport


def check(tool: CacheTool, cache: Path, *, grace: float = 3600.0, now: float | None = None) -> VerifyReport:
    """The tool's findings about `cache`, then its leftover temp dirs (reclaimable ones listed to fix)."""
    now = time.time() if now is None else now
    report = tool.verify(cache)
    if not cache.is_dir():
        report.findings.append(Finding("error", str(cache), "no cache here"))
        return report
    with gc.leftover_temp_dirs(cache, grace=grace, now=now, own_lock=tool.own_lock, read_only=True) as leftovers:
        for leftover in leftovers:
            report.findings.append(Finding(
                "garbage", os.path.relpath(leftover.path, cache),
                "leftover temp dir" + ("" if leftover.reclaimable else " (may be in use; kept)"),
                [leftover.path] if leftover.reclaimable else []))
    return report


def fix(report: VerifyReport) -> int:
    """Remove what is provably broken or garbage. Never a valid entry. Returns how many were removed."""
    removed = 0
    for finding in report.findings:
        for path in finding.fix:
            if os.path.lexists(path):
                fsops.rmtree(path)
                removed += 1
    return removed


def render(report: VerifyReport) -> str:
    checked = ", ".join(f"{count} {what}" for what, count in report.checked.items()) or "nothing"
    lines = [f"{report.cache}: {checked} checked"]
    for f in report.findings:
        lines.append(f"  {f.kind}: {f.path}: {f.problem}")
    lines.append("  OK" if report.ok else f"  {len(report.errors)} error(s); {advice(report)}")
    return "\n".join(lines)


def advice(report: VerifyReport) -> str:
    """What to do about the errors: `--fix` only when it can remove them, so that it never loops on advice."""
    if all(f.fix for f in report.errors):
        return "`ci-cache verify --fix` repairs them"
    if not report.cache.is_dir():
        return f"no cache at {report.cache}: give the path of a uv cache, or no path for the shared one"
    return "`ci-cache verify --fix` cannot repair these; `uv cache clean` of this cache starts it afresh"
