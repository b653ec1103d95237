"""A job's life: allocate and seed (setup), then merge and release (finish)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_cache import fsops, gc, keyfiles, lease, locks, log, osapi, prune, shims
from ci_cache.config import Config
from ci_cache.errors import AllocationMissing, CiCacheError, JobBusy, NothingAllocated, StoreError
from ci_cache.providers import JobIdentity, job_key
from ci_cache.store import Store
from ci_cache.tools import from_config
from ci_cache.tools.base import CacheTool, MergeRequest, SeedRequest

# How long finish waits for setup's lease holder to let go after being told to stop.
LEASE_HANDOVER_TIMEOUT = 30.0
# setup's env carries the allocation's token; `finish` only finalises the record that holds the same one.
# NO_TOKEN says "this setup allocated nothing" (mode off, or it failed): a finish that carries it does
# nothing. It is a word, not "", because PowerShell, cmd and Jenkins' withEnv delete a variable set to "".
TOKEN_VAR = "CI_CACHE_TOKEN"
NO_TOKEN = "none"


@dataclass(frozen=True)
class Context:
    """Everything a command needs, resolved once by the CLI; nothing below reads os.environ."""

    config: Config
    env: Mapping[str, str]
    cwd: Path
    windows: bool
    identity: JobIdentity
    root: Path

    @property
    def store(self) -> Store:
        return Store(self.root)

    @property
    def key(self) -> str:
        return job_key(self.identity.job_id)

    @property
    def strict(self) -> bool:
        return self.config.strict


@dataclass
class Allocation:
    job: str
    key: str
    job_dir: Path
    mode: str
    env: dict[str, str] = field(default_factory=dict)
    path_prepend: list[str] = field(default_factory=list)
    caches: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seeded: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    lease: osapi.FileLockHandle | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "job_key": self.key,
            "job_dir": str(self.job_dir),
            "mode": self.mode,
            "env": self.env,
            "path_prepend": self.path_prepend,
            "caches": self.caches,
            "warnings": self.warnings,
        }


def effective_mode(ctx: Context) -> tuple[str, str | None]:
    """The mode to use, and why it differs from the configured one (an untrusted job never writes)."""
    mode = ctx.config.resolved_mode(ctx.windows)
    if ctx.config.merge == "protected" and not ctx.identity.trusted and mode in ("shared", "direct"):
        return "isolated", (f"untrusted job ({ctx.identity.trust_reason}): isolated with no merge, instead of "
                            f"{mode}, so that it cannot write to the shared cache")
    return mode, None


def setup(ctx: Context, *, in_process: bool) -> Allocation:
    """Allocate the job's dir and lease, seed its caches, and work out its env.

    `in_process`: the caller (run) holds the lease itself; otherwise a detached holder does.
    """
    store = ctx.store
    mode, note = effective_mode(ctx)
    alloc = Allocation(job=ctx.identity.job_id, key=ctx.key, job_dir=store.job_dir(ctx.key), mode=mode)
    if note:
        alloc.warnings.append(note)
    if mode == "off":
        alloc.env[TOKEN_VAR] = NO_TOKEN
        return alloc
    store.ensure()
    if ctx.config.gc.on_setup:
        try:
            gc.maybe_collect(store, grace=ctx.config.gc.grace, interval=ctx.config.gc.interval)
        except (OSError, CiCacheError) as exc:
            log.warn(f"gc at setup failed, continuing: {exc}")
    token = secrets.token_hex(16)
    holder_pid = _claim(ctx, alloc, in_process=in_process)
    try:
        # The lease is ours now: whatever is left under this job's name is a dead attempt's.
        if store.job_dir(alloc.key).exists() or store.record(alloc.key).exists():
            log.info(f"reclaiming the dir of an earlier, dead run of job {alloc.job!r}")
            release_dir(store.job_dir(alloc.key))
            fsops.unlink(store.record(alloc.key))
        alloc.job_dir.mkdir(parents=True)
        _write_record(ctx, alloc, status="seeding", extra={"holder_pid": holder_pid, "token": token})
        tools = from_config(ctx.config)
        started = time.monotonic()
        for tool in tools:
            _allocate_tool(ctx, alloc, tool)
        alloc.phases["seed"] = round(time.monotonic() - started, 4)
        if mode == "shared":
            commands = [c for t in tools if t.has_shared_cache for c in t.commands]
            bin_dir = alloc.job_dir / "bin"
            shims.install(bin_dir, commands, windows=ctx.windows)
            if not in_process:
                alloc.path_prepend.append(str(bin_dir))
        alloc.env.update({"CI_CACHE_JOB": alloc.job, "CI_CACHE_ROOT": str(ctx.root),
                          "CI_CACHE_JOB_DIR": str(alloc.job_dir), TOKEN_VAR: token})
        _write_record(ctx, alloc, status="ready")
    except BaseException:
        # A failed setup leaves nothing behind: the finish that may follow it has nothing of its own to find.
        handle = alloc.lease or lease.stop_holder(holder_pid, store.lease(alloc.key), timeout=LEASE_HANDOVER_TIMEOUT)
        alloc.lease = None
        with contextlib.suppress(OSError, CiCacheError):  # what is left, gc reclaims: the lease is free
            release_dir(alloc.job_dir)
            fsops.unlink(store.record(alloc.key))
        handle.release()
        with contextlib.suppress(OSError, CiCacheError):
            fsops.unlink(store.lease(alloc.key))
        raise
    return alloc


def _claim(ctx: Context, alloc: Allocation, *, in_process: bool) -> int | None:
    """Take the job's lease; returns the pid of setup's lease holder (None for `run`, which holds it itself).

    Taking it is one non-blocking OS lock, so of two setups of one id started at the same instant exactly
    one wins; the other fails with JobBusy before it touches anything.
    """
    store, key = ctx.store, alloc.key
    holder_pid = None
    if in_process:
        alloc.lease = osapi.try_lock(store.lease(key))
    else:
        with contextlib.suppress(lease.LeaseTaken):
            holder_pid = lease.start_holder(store.lease(key), ctx.config.lease_ttl, ctx.env)
    if alloc.lease is None and holder_pid is None:
        raise JobBusy(
            f"job {alloc.job!r} is already set up and still running: another setup or run holds its lease "
            f"{store.lease(key)}",
            hint="give each job its own id with --job / CI_CACHE_JOB, or run `ci-cache finish` for it first",
        )
    return holder_pid


def _write_record(ctx: Context, alloc: Allocation, *, status: str, extra: dict[str, Any] | None = None) -> None:
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
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "created": record.get("created", time.time()),
        "caches": alloc.caches,
        "env": alloc.env,
        "seeded": alloc.seeded,
        "phases": alloc.phases,
        "warnings": alloc.warnings,
    })
    ctx.store.write_record(alloc.key, record)


def _allocate_tool(ctx: Context, alloc: Allocation, tool: CacheTool) -> None:
    store, config = ctx.store, ctx.config
    link_mode = config.resolved_uv_link_mode(ctx.windows) if alloc.mode in ("isolated", "shared") else None
    if not tool.has_shared_cache:
        cache_dir = alloc.job_dir / "tmp"
        cache_dir.mkdir(parents=True, exist_ok=True)
    elif alloc.mode == "isolated":
        cache_dir = alloc.job_dir / tool.name
        alloc.seeded[tool.name] = _seed(ctx, alloc, tool, cache_dir)
    else:
        cache_dir = store.shared_cache(tool.name)
        cache_dir.mkdir(parents=True, exist_ok=True)
    alloc.caches[tool.name] = str(cache_dir)
    alloc.env.update(tool.env(cache_dir, windows=ctx.windows, link_mode=link_mode))


def _seed(ctx: Context, alloc: Allocation, tool: CacheTool, cache_dir: Path) -> dict[str, Any]:
    """Seed one tool's job cache. On failure the job starts cold, never with half a cache."""
    packages = None
    if ctx.config.key_files:
        base = Path(ctx.identity.workspace) if ctx.identity.workspace else ctx.cwd
        found = keyfiles.read(ctx.config.key_files, base)
        packages = found.packages
        if found.files and packages is None:
            log.info("key_files: a file's format is unknown; seeding the whole cache")
    request = SeedRequest(
        shared=ctx.store.shared_cache(tool.name),
        job=cache_dir,
        link=ctx.config.seed == "link",
        packages=packages,
        manifest=alloc.job_dir / f"{tool.name}.manifest.json",
    )
    if ctx.config.seed == "none":
        cache_dir.mkdir(parents=True, exist_ok=True)
        fsops.write_atomic(request.manifest, b"{}")
        return {"scope": "none"}
    try:
        stats = tool.seed(request)
    except (OSError, CiCacheError) as exc:
        if ctx.strict:
            raise StoreError(f"seeding the {tool.name} cache failed: {exc}") from exc
        message = f"seeding the {tool.name} cache failed ({exc}); the job starts with an empty cache"
        log.warn(message)
        alloc.warnings.append(message)
        fsops.rmtree(cache_dir)
        cache_dir.mkdir(parents=True)
        fsops.unlink(request.manifest)
        return {"failed": str(exc)}
    return stats.as_dict()


# ---------------------------------------------------------------------------------------------------
# finish


@dataclass
class FinishResult:
    job: str
    key: str
    mode: str
    status: str
    merge_decision: str
    merged: dict[str, Any] = field(default_factory=dict)
    seeded: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def merge_decision(ctx: Context, mode: str, status: str) -> tuple[bool, str]:
    if mode != "isolated":
        return False, f"mode {mode}: nothing to merge"
    policy = ctx.config.merge
    if policy == "never":
        return False, "merge: never"
    if policy == "success" and status != "success":
        return False, f"merge: success, and the job's status is {status}"
    if policy == "protected" and not ctx.identity.trusted:
        return False, f"merge: protected, and the job is untrusted ({ctx.identity.trust_reason})"
    return True, f"merge: {policy}"


def finish(ctx: Context, status: str, *, held: osapi.FileLockHandle | None = None,
           token: str | None = None) -> FinishResult:
    """Merge and release the allocation that this job's own setup made, and nothing else.

    Whose it is: `held` (run holds the lease in process), else `token` or CI_CACHE_TOKEN (what setup
    exported; NO_TOKEN when it allocated nothing), else, when nothing was carried, the identity alone,
    refused when the record names another CI job (two CI jobs that were given one id).
    """
    store, key, job = ctx.store, ctx.key, ctx.identity.job_id
    if held is None and token is None:
        token = ctx.env.get(TOKEN_VAR)
    if token is not None and token.strip() in ("", NO_TOKEN):
        raise NothingAllocated(f"job {job!r}: its setup allocated nothing ({TOKEN_VAR}={token.strip()!r}: mode "
                               "off, or the setup failed)")
    record = store.read_record(key)
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
    mode = str(record.get("mode", "isolated"))
    result = FinishResult(job=ctx.identity.job_id, key=key, mode=mode, status=status, merge_decision="",
                          seeded=dict(record.get("seeded", {})))
    result.phases.update({k: float(v) for k, v in dict(record.get("phases", {})).items()})
    handle = held or lease.stop_holder(record.get("holder_pid"), store.lease(key),
                                       timeout=LEASE_HANDOVER_TIMEOUT)
    try:
        do_merge, why = merge_decision(ctx, mode, status)
        result.merge_decision = why
        if do_merge:
            _merge_all(ctx, result, dict(record.get("caches", {})))
            _prune_if_over(ctx, result)
        started = time.monotonic()
        try:
            release_dir(store.job_dir(key))
            fsops.unlink(store.record(key))
        except (OSError, CiCacheError) as exc:
            message = f"could not delete the job dir yet ({exc}); `ci-cache gc` reclaims it later"
            log.warn(message)
            result.warnings.append(message)
        result.phases["cleanup"] = round(time.monotonic() - started, 4)
    finally:
        handle.release()
        fsops.unlink(store.lease(key))
    return result


def _merge_all(ctx: Context, result: FinishResult, caches: Mapping[str, str]) -> None:
    store = ctx.store
    started = time.monotonic()
    waited_total = 0.0
    for tool in from_config(ctx.config):
        if not tool.has_shared_cache or tool.name not in caches:
            continue
        request = MergeRequest(job=Path(caches[tool.name]), shared=store.shared_cache(tool.name),
                               manifest=store.job_dir(ctx.key) / f"{tool.name}.manifest.json")
        try:
            lock, waited = locks.acquire(store.write_lock(tool.name), timeout=ctx.config.lock_timeout,
                                         purpose=f"merge into the shared {tool.name} cache")
            waited_total += waited
            with lock:
                result.merged[tool.name] = tool.merge(request).as_dict()
        except (OSError, CiCacheError) as exc:
            if ctx.strict:
                raise StoreError(f"merging the {tool.name} cache failed: {exc}",
                                 hint="the shared cache is unchanged apart from whole entries") from exc
            message = (f"merging the {tool.name} cache failed ({exc}); the shared cache keeps only whole "
                       "entries, the job's result is unaffected")
            log.warn(message)
            result.warnings.append(message)
            result.merged[tool.name] = {"failed": str(exc)}
    result.phases["lock_wait"] = round(waited_total, 4)
    result.phases["merge"] = round(time.monotonic() - started - waited_total, 4)


def _prune_if_over(ctx: Context, result: FinishResult) -> None:
    """`prune.on_finish`: bound the shared caches right after a merge grew them. Never fails the job."""
    bounds = ctx.config.prune
    if not bounds.on_finish or (bounds.max_size is None and bounds.max_age is None):
        return
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


def release_dir(job_dir: Path) -> None:
    """Take the job's dir out of the way at once and delete it in the background.

    Deleting tens of thousands of links takes as long as making them; the job need not wait for it.
    The dir is first renamed to a temp name (instant), so a later job with the same id starts clean;
    if the background delete dies, `gc` reclaims the temp dir.
    """
    if not job_dir.exists():
        return
    try:
        trash = fsops.rename_away(job_dir)
    except (OSError, CiCacheError):
        fsops.rmtree(job_dir)  # cannot rename (a file held open on Windows): delete here, with retries
        return
    if not osapi.start_background_delete(trash):
        fsops.rmtree(trash)
