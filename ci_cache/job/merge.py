"""Merging a finished job's new entries into the shared caches, each under its writer lock."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from ci_cache import faults, locks, log
from ci_cache.errors import CiCacheError, StoreError
from ci_cache.job.context import Context, FinishResult, write_policy
from ci_cache.tools import from_config
from ci_cache.tools.base import MergeRequest


def decision(ctx: Context, mode: str, status: str) -> tuple[bool, str]:
    """Whether to merge the job, by its mode, the merge policy, its status and its trust; and why."""
    if mode != "isolated":
        return False, f"mode {mode}: nothing to merge"
    policy = ctx.config.merge
    return write_policy(ctx, "merge", policy, status, needs_trust=policy == "protected")


def merge_all(ctx: Context, result: FinishResult, caches: Mapping[str, str], job_dir: Path) -> None:
    """Merge every tool's job cache; a failure is a warning (an error with --strict), never half an entry."""
    store = ctx.store
    started = time.monotonic()
    waited_total = 0.0
    for tool in from_config(ctx.config):
        if not tool.has_shared_cache or tool.name not in caches:
            continue
        request = MergeRequest(job=Path(caches[tool.name]), shared=store.shared_cache(tool.name),
                               manifest=job_dir / f"{tool.name}.manifest.json")
        try:
            lock, waited = locks.acquire(store.write_lock(tool.name), timeout=ctx.config.lock_timeout,
                                         purpose=f"merge into the shared {tool.name} cache")
            waited_total += waited
            with lock:
                result.merged[tool.name] = tool.merge(request).as_dict()
        except (OSError, CiCacheError) as exc:
            fault = faults.explain(exc, ctx.root)
            if ctx.strict:
                raise StoreError(f"merging the {tool.name} cache failed: {fault.cause}",
                                 hint=f"{fault.hint}; the shared cache is unchanged apart from whole entries") from exc
            message = (f"merging the {tool.name} cache failed: {fault.cause} ({fault.hint}); the shared cache "
                       "keeps only whole entries, the job's result is unaffected")
            log.warn(message)
            result.warnings.append(message)
            result.merged[tool.name] = {"failed": str(exc)}
    result.phases["lock_wait"] = round(waited_total, 4)
    result.phases["merge"] = round(time.monotonic() - started - waited_total, 4)
