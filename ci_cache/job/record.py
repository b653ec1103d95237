"""The job's record beside its dir: who set it up, where its caches are, and how far it got."""

from __future__ import annotations

import os
import time
from typing import Any

from ci_cache import faults, jobdirs, osapi
from ci_cache.job.context import Allocation, Context


def write(ctx: Context, alloc: Allocation, *, status: str, extra: dict[str, Any] | None = None) -> None:
    """Write the allocation's record (`jobdirs.record_of` its dir); `extra` and `created` survive from a last
    write."""
    path = jobdirs.record_of(alloc.job_dir)
    record = jobdirs.read_record(path) or {}
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
        jobdirs.write_record(alloc.job_dir, record)
    except OSError as exc:
        raise faults.store_error(exc, ctx.root, f"could not write the job's record {path}") from exc
