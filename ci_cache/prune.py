"""`ci-cache prune`: keep each shared cache under a size and an age, each tool by its own rules.

Each cache is pruned under its writer lock, by its tool (`CacheTool.prune`): uv runs `uv cache prune`,
then evicts least recently used whole entries; other tools evict least recently used files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ci_cache import locks, log, pool
from ci_cache.store import Store
from ci_cache.tools.base import CacheTool, PruneReport, PruneRequest


def prune_store(store: Store, tools: Sequence[CacheTool], *, max_size: int | None, max_age: float | None,
                ci: bool, env: Mapping[str, str], lock_timeout: float) -> list[PruneReport]:
    """Prune the shared cache of each tool that has one; the bounds apply to each cache."""
    reports = []
    for tool in tools:
        cache = store.shared_cache(tool.name)
        if not tool.has_shared_cache or not cache.is_dir():
            continue
        handle, _ = locks.acquire(store.write_lock(tool.name), timeout=lock_timeout,
                                  purpose=f"prune the shared {tool.name} cache")
        with handle:
            report = tool.prune(PruneRequest(cache=cache, max_size=max_size, max_age=max_age, ci=ci, env=env,
                                             lock_timeout=lock_timeout))
        if report.evicted_entries or report.evicted_files or report.bytes_after < report.bytes_before:
            # The pool's caches link what was evicted: they would keep it on the disk.
            pool.empty(store, tool.name, env)
        reports.append(report)
    return reports


def log_report(report: PruneReport) -> None:
    log.info(f"prune {report.tool}: {report.bytes_before / 2**20:.1f} MiB -> {report.bytes_after / 2**20:.1f} MiB, "
             f"{report.evicted_entries} entries and {report.evicted_files} files evicted; {report.uv_prune}")
    for note in report.notes:
        log.warn(note)
