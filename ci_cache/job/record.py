"""The job's record beside its dir: who set it up, where its caches are, and how far it got."""

from __future__ import annotations

import os
import time
from typing import Any

from ci_cache import faults, osapi
from ci_cache.job.context import Allocation, Context


def write(ctx: Context, alloc: Allocation, *, status: str, extra: dict[str, Any] | None = None) -> None:
    """Write the record anew from the allocation; `extra` and `created` survive from the last write."""
    record = ctx.store.read_record(alloc.key) or {}
    record.update(extra or {})
    record.update({
        "job": alloc.job,
        "key": alloc.key,
        "status": status,
        "mode": alloc.mode,
        "provider": ctx.identity.provider,
        "provider_ids": dict(ctx.identity.details),
        "ci_job_id": ctx.identity.ci_job_id,
        "trusted": ctx.identity.trusted,
        "trust_reason": ctx.identity.trust_reason,
        "host": osapi.hostname(),
        "pid": os.getpid(),
        "created": record.get("created", time.time()),
        "caches": alloc.caches,
        "env": alloc.env,
        "seeded": alloc.seeded,
        "pool": alloc.pool,
        "phases": alloc.phases,
        "warnings": alloc.warnings,
    })
    try:
        ctx.store.write_record(alloc.key, record)
    except OSError as exc:
        where = ctx.store.record(alloc.key)
        raise faults.store_error(exc, ctx.root, f"could not write the job's record {where}") from exc
