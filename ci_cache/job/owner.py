"""Which allocation a finish may finalise: only the one its own setup made."""

from __future__ import annotations

from typing import Any

from ci_cache import jobdirs, osapi
from ci_cache.errors import AllocationMissing, NothingAllocated
from ci_cache.job.context import NO_TOKEN, TOKEN_VAR, Context, effective_mode


def owned_record(ctx: Context, *, held: osapi.FileLockHandle | None, token: str | None) -> dict[str, Any]:
    """The job's record, when this finish owns it; otherwise AllocationMissing (NothingAllocated when its
    setup allocated nothing), with `held` released.

    Whose it is: `held` (run holds the lease in process), else `token` or CI_CACHE_TOKEN (what setup
    exported; NO_TOKEN when it allocated nothing), else, when nothing was carried, the identity alone,
    refused when the record names another CI job (two CI jobs that were given one id). In mode off, where
    setup allocates nothing, a missing record is no surprise: NothingAllocated.
    """
    store, key, job = ctx.store, ctx.key, ctx.identity.job_id
    if held is None and token is None:
        token = ctx.env.get(TOKEN_VAR)
    if token is not None and token.strip() in ("", NO_TOKEN):
        raise NothingAllocated(f"job {job!r}: its setup allocated nothing ({TOKEN_VAR}={token.strip()!r}: mode "
                               "off, or the setup failed)")
    names = jobdirs.listing(store)
    candidates = jobdirs.unfinished_records(store, key, names)
    # Its own setup's by the token; with none carried, the newest (one id, one job at a time: the lease).
    mine = [r for r in candidates if r.get("token") == token] if token is not None else candidates
    record = next(iter(mine or candidates), None)
    if record is None and effective_mode(ctx)[0] == "off":
        raise NothingAllocated(f"job {job!r}: mode off allocates nothing")
    problem, hint = None, "give each job its own id with --job / CI_CACHE_JOB"
    theirs = f"the allocation of job {job!r} under {ctx.root} was set up by"
    if record is None:
        problem = f"no allocation found for job {job!r} under {ctx.root}"
        hint = "run `ci-cache setup` first, with the same --job/CI_CACHE_JOB and root"
    elif token is not None and record.get("token") != token:
        problem = f"{theirs} another setup (its token is not this job's {TOKEN_VAR}); it is left alone"
    elif (held is None and token is None and record.get("ci_job_id") and ctx.identity.ci_job_id
          and record["ci_job_id"] != ctx.identity.ci_job_id):
        problem = f"{theirs} another CI job ({record['ci_job_id']}, not {ctx.identity.ci_job_id}); it is left alone"
    if record is None or problem is not None:
        if held is not None:
            held.release()
        raise AllocationMissing(problem or "", hint=hint)
    return record
