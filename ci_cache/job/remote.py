"""The fleet tier in a job's life: pull what the job needs at setup, push what it added at finish.

Setup, between claim and seed: the job's key files (`keyfiles.for_job`) name what it needs; what the
agent's shared cache lacks of it is fetched, verified and installed into the shared cache (under
ci-cache's writer lock, taken only for the install), so that seeding then finds it as if it had always
been there. A job whose files name nothing pulls nothing.

Finish, after the merge: what the job's cache gained is pushed, create-if-absent, when the trust policy
lets the job write. What it gained is what its cache holds now and the shared cache did not hold at
setup: setup lists the shared cache's groups right after its pull (directory listings, no file opened)
into the job dir, and finish lists the cache the job wrote into (its own when isolated, the shared one
otherwise) and pushes the difference. So a job that added nothing makes no request at all, in every
mode; a check of the key files' packages against the remote would cost a request per package in every
job, and would miss what a job installs without naming it.

Neither half ever fails the job unless `strict`: each failure is one warning line, bounded by the
budgets (`remote.pull_budget`, `remote.push_budget`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_cache import fsops, locks, log
from ci_cache.errors import CiCacheError
from ci_cache.job.context import Allocation, Context, FinishResult, write_policy
from ci_cache.tools import from_config
from ci_cache.tools.base import CacheTool, RemoteCodec, Wanted

if TYPE_CHECKING:  # the transfer machinery (asyncio, obstore) is imported only by jobs that use a remote
    from ci_cache.remote.budget import Budget
    from ci_cache.remote.objectstore import ObjectStore
    from ci_cache.remote.reports import PullReport, PushReport
    from ci_cache.remote.sync import Guard


def _codecs(ctx: Context, tools: Sequence[CacheTool]) -> list[tuple[CacheTool, RemoteCodec]]:
    """The tools whose shared cache travels through the remote, when one is configured."""
    if ctx.config.remote.url is None:
        return []
    found = [(tool, tool.remote(ctx.env)) for tool in tools if tool.has_shared_cache]
    return [(tool, codec) for tool, codec in found if codec is not None]


def push_decision(ctx: Context, status: str) -> tuple[bool, str]:
    """Whether the job may write to the remote, by `remote.push` (unset: the merge policy), its status and
    its trust; and why. An untrusted job never writes where either policy is `protected`."""
    policy = ctx.config.remote.resolved_push(ctx.config.merge)
    return write_policy(ctx, "remote.push", policy, status, needs_trust="protected" in (policy, ctx.config.merge))


# The record's key for where setup listed each shared cache's groups (the job's dir: setup made it).
_LISTED = "remote_listed"


def _snapshot_file(job_dir: Path, tool: str) -> Path:
    return job_dir / f"{tool}.remote-groups.json"


def _open(ctx: Context, request_timeout: float) -> ObjectStore:
    from ci_cache.remote.obstore_store import open_store  # obstore is imported only when a remote is used

    return open_store(ctx.config.remote, ctx.env, request_timeout=request_timeout)


def _degrade(ctx: Context, what: str, exc: CiCacheError | OSError, warnings: list[str]) -> None:
    """A failure of the remote tier as a whole: one warning (an error with --strict)."""
    if ctx.strict:
        raise exc
    message = f"remote {what} skipped: {exc}; the job goes on without it"
    log.warn(message)
    warnings.append(message)


def _keep(reports: dict[str, Any], tool: str, report: PullReport | PushReport, warnings: list[str]) -> None:
    """A tool's report for the summary; each of its warnings said now and kept for the summary too."""
    reports[tool] = report.as_dict()
    for warning in report.warnings:
        log.warn(warning)
        warnings.append(warning)


def _writer_lock(ctx: Context, tool: str) -> Guard:
    def guard(timeout: float) -> AbstractContextManager[object]:
        handle, _waited = locks.acquire(ctx.store.write_lock(tool), timeout=timeout,
                                        purpose=f"install what the remote gave into the shared {tool} cache")
        return handle

    return guard


# ---------------------------------------------------------------------------------------------------
# Setup.


def pull(ctx: Context, alloc: Allocation, tools: Sequence[CacheTool]) -> None:
    """Pull into each shared cache what the job's key files name and it lacks; then, if the job may push,
    list the shared caches' groups for finish to compare with. What it did goes in the job's record."""
    codecs = _codecs(ctx, tools) if alloc.mode != "off" else []
    if not codecs:
        return
    from ci_cache.job import seed

    started = time.monotonic()
    settings = ctx.config.remote
    found = seed.key_files(ctx, alloc) if settings.pull else None
    wanted = Wanted.from_key_files(found) if found is not None else Wanted()
    done: dict[str, Any] = {"key_files": [str(p) for p in found.files] if found else []}
    if not settings.pull:
        done["skipped"] = "remote.pull: false"
    elif wanted.empty:
        done["skipped"] = f"no lock, requirements or pyproject file in {ctx.workspace} names a package"
    else:
        done["tools"] = _pull_all(ctx, alloc, codecs, wanted)
    listed: dict[str, str] = {}  # tool -> where its listing is, for finish (the record says where)
    if push_decision(ctx, "success")[0]:
        for tool, codec in codecs:
            shared = ctx.store.shared_cache(tool.name)
            listing = _snapshot_file(alloc.job_dir, tool.name)
            try:
                fsops.write_atomic(listing, json.dumps(codec.groups(shared)).encode())
                listed[tool.name] = str(listing)
            except OSError as exc:
                _degrade(ctx, f"listing of the shared {tool.name} cache (for the push at finish)", exc,
                         alloc.warnings)
    alloc.phases["pull"] = round(time.monotonic() - started, 4)
    alloc.notes.update({"remote": {"pull": done}, _LISTED: listed})


def _pull_all(ctx: Context, alloc: Allocation, codecs: list[tuple[CacheTool, RemoteCodec]],
              wanted: Wanted) -> dict[str, Any]:
    settings = ctx.config.remote
    reports: dict[str, Any] = {}
    store: ObjectStore | None = None
    budget: Budget | None = None
    try:
        for tool, codec in codecs:
            shared = ctx.store.shared_cache(tool.name)
            shared.mkdir(parents=True, exist_ok=True)  # the agent has a shared cache from its first pull on
            session = codec.pull_session(shared, wanted)
            first = session.lookups()
            if not first:  # a warm agent: the cache has all the job names, and nothing is even imported
                from ci_cache.remote.reports import PullReport

                reports[tool.name] = PullReport(missing=session.unmet(), warnings=session.notes()).as_dict()
                alloc.warnings.extend(session.notes())
                continue
            from ci_cache.remote import progress, sync
            from ci_cache.remote.budget import Budget, run

            budget = budget or Budget(settings.pull_budget, what="remote pull")
            store = store or _open(ctx, settings.pull_budget)
            report = run(partial(
                sync.pull, store, codec, shared, wanted, budget,
                concurrency=settings.concurrency, max_blob_size=settings.max_blob_size,
                progress=progress.on(sys.stderr, quiet=log.quiet()), strict=ctx.strict,
                mark_used=push_decision(ctx, "success")[0], staging=alloc.job_dir / f"{tool.name}.pulling",
                guard=_writer_lock(ctx, tool.name), planned=(session, first)))
            _keep(reports, tool.name, report, alloc.warnings)
    except (CiCacheError, OSError) as exc:
        _degrade(ctx, "pull", exc, alloc.warnings)
    return reports


# ---------------------------------------------------------------------------------------------------
# Finish.


def push(ctx: Context, result: FinishResult, found: dict[str, Any], status: str) -> None:
    """Push what the job's caches gained since setup, when the policy lets it; put the pull setup recorded
    and the push in `result.remote`."""
    result.remote.update(dict(found.get("remote", {})))
    codecs = _codecs(ctx, from_config(ctx.config)) if result.mode != "off" else []
    if not codecs:
        return
    allowed, why = push_decision(ctx, status)
    result.remote["push_decision"] = why
    if not allowed:
        return
    started = time.monotonic()
    listed: dict[str, str] = dict(found.get(_LISTED, {}))
    caches: dict[str, str] = dict(found.get("caches", {}))
    todo: list[tuple[CacheTool, RemoteCodec, Path, list[str]]] = []
    for tool, codec in codecs:
        try:
            before = set(json.loads(Path(listed[tool.name]).read_bytes()))
            cache = Path(caches[tool.name])
            todo.append((tool, codec, cache, sorted(set(codec.groups(cache)) - before)))
        except (OSError, ValueError, TypeError, KeyError):
            continue  # setup listed nothing (it could not, or the remote was configured after it): no push
    pushed = _push_all(ctx, result, [t for t in todo if t[3]])
    result.remote["push"] = pushed
    result.phases["push"] = round(time.monotonic() - started, 4)


def _push_all(ctx: Context, result: FinishResult,
              todo: list[tuple[CacheTool, RemoteCodec, Path, list[str]]]) -> dict[str, Any]:
    if not todo:
        return {}
    from ci_cache.remote import progress, sync
    from ci_cache.remote.budget import Budget, run

    settings = ctx.config.remote
    budget = Budget(settings.push_budget, what="remote push")
    reports: dict[str, Any] = {}
    try:
        store = _open(ctx, settings.push_budget)
        for tool, codec, cache, groups in todo:
            report = run(partial(
                sync.push, store, codec, cache, groups, budget, concurrency=settings.concurrency,
                max_blob_size=settings.max_blob_size, progress=progress.on(sys.stderr, quiet=log.quiet()),
                strict=ctx.strict))
            _keep(reports, tool.name, report, result.warnings)
    except (CiCacheError, OSError) as exc:
        _degrade(ctx, "push", exc, result.warnings)
    return reports
