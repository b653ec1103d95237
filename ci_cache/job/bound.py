"""`prune.on_finish`: bound the shared caches right after a merge grew them. Never fails the job."""

from __future__ import annotations

import time

from ci_cache import log
from ci_cache.errors import CiCacheError
from ci_cache.job.context import Context, FinishResult
from ci_cache.tools import from_config


def prune_if_over(ctx: Context, result: FinishResult) -> None:
    """Prune the caches the job merged into, when the config bounds them and asks for it."""
    bounds = ctx.config.prune
    if not bounds.on_finish or (bounds.max_size is None and bounds.max_age is None):
        return
    from ci_cache import prune  # only when a bound is set: most jobs never prune

    started = time.monotonic()
    try:
        merged = [t for t in from_config(ctx.config) if t.name in result.merged]
        reports = prune.prune_store(ctx.store, merged, max_size=bounds.max_size, max_age=bounds.max_age,
                                    ci=bounds.uv_ci, env=ctx.env, lock_timeout=ctx.config.lock_timeout)
    except (OSError, CiCacheError) as exc:
        message = f"prune after the merge failed ({exc}); the shared cache is valid, only not bounded"
        log.warn(message)
        result.warnings.append(message)
        return
    result.phases["prune"] = round(time.monotonic() - started, 4)
    for report in reports:
        prune.log_report(report)
