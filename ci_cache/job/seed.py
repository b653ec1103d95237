"""Each tool's cache for the job: a private copy seeded from the shared one (isolated), or the shared one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_cache import faults, fsops, log, pool
from ci_cache.errors import CiCacheError, StoreError
from ci_cache.job.context import Allocation, Context
from ci_cache.tools.base import CacheTool, SeedRequest

if TYPE_CHECKING:
    from ci_cache.keyfiles import KeyFiles


def allocate(ctx: Context, alloc: Allocation, tools: Sequence[CacheTool]) -> None:
    """Give every tool its cache dir and the env that points the tool at it; seed the isolated ones."""
    started = time.monotonic()
    for tool in tools:
        _allocate_tool(ctx, alloc, tool)
    alloc.phases["seed"] = round(time.monotonic() - started, 4)


def _allocate_tool(ctx: Context, alloc: Allocation, tool: CacheTool) -> None:
    store, config = ctx.store, ctx.config
    link_mode = config.resolved_uv_link_mode(ctx.windows) if alloc.mode in ("isolated", "shared") else None
    if not tool.has_shared_cache:
        cache_dir = alloc.job_dir / "tmp"
        fsops.makedirs(cache_dir)
    elif alloc.mode == "isolated":
        cache_dir = alloc.job_dir / tool.name
        alloc.seeded[tool.name] = _seed(ctx, alloc, tool, cache_dir)
    else:
        cache_dir = store.shared_cache(tool.name)
        fsops.makedirs(cache_dir)
    alloc.caches[tool.name] = str(cache_dir)
    alloc.env.update(tool.env(cache_dir, windows=ctx.windows, link_mode=link_mode))


def key_files(ctx: Context, alloc: Allocation) -> KeyFiles:
    """What the job's key files name (`keyfiles.for_job`: the configured ones, else those found in its
    workspace), read once per setup: the remote pull and the seed both ask."""
    if alloc.key_files is None:
        from ci_cache import keyfiles

        alloc.key_files = keyfiles.for_job(ctx.config.key_files, ctx.workspace)
    return alloc.key_files


def _scope(ctx: Context, alloc: Allocation) -> frozenset[str] | None:
    """The packages the seed takes (with their dependencies), or None for the whole cache: when the job's
    files cannot all be read, and when files found in the workspace (not configured) name none at all."""
    found = key_files(ctx, alloc)
    if found.files and found.packages is None:
        log.info("key files: a file's format is unknown; seeding the whole cache")
    if not found.packages and not ctx.config.key_files:
        return None
    return found.packages


def _seed(ctx: Context, alloc: Allocation, tool: CacheTool, cache_dir: Path) -> dict[str, Any]:
    """Seed one tool's job cache: a warm one from the pool refreshed, else a fresh one. On failure the job
    starts cold, never with half a cache."""
    packages = _scope(ctx, alloc)
    request = SeedRequest(
        shared=ctx.store.shared_cache(tool.name),
        job=cache_dir,
        link=ctx.config.seed == "link",
        packages=packages,
        manifest=alloc.job_dir / f"{tool.name}.manifest.json",
    )
    if ctx.config.seed == "none":
        fsops.makedirs(cache_dir)
        fsops.write_atomic(request.manifest, b"{}", durable=False)
        return {"scope": "none"}
    if request.link and tool.keeps_warm and ctx.config.pool.size > 0:
        tag = pool.scope_tag(packages)
        alloc.pool[tool.name] = tag  # finish gives the cache back under the same scope
        if pool.claim(ctx.store, tool.name, tag, cache_dir, max_age=ctx.config.pool.max_age):
            try:
                return tool.seed(request._replace(warm=True)).as_dict()
            except (OSError, CiCacheError) as exc:
                # A warm cache that cannot be refreshed (a file in it held open) is dropped, whole: seed anew.
                log.info(f"refreshing a warm {tool.name} cache failed ({exc}); seeding a new one")
                if not pool.discard(cache_dir, ctx.env):
                    fsops.rmtree(cache_dir)
    try:
        stats = tool.seed(request)
    except (OSError, CiCacheError) as exc:
        fault = faults.explain(exc, ctx.root)
        if ctx.strict:
            raise StoreError(f"seeding the {tool.name} cache failed: {fault.cause}", hint=fault.hint) from exc
        message = (f"seeding the {tool.name} cache failed: {fault.cause} ({fault.hint}); the job starts with an "
                   "empty cache")
        log.warn(message)
        alloc.warnings.append(message)
        # What was seeded goes (on a full disk, that is what frees the space for the job itself).
        fsops.rmtree(cache_dir)
        fsops.makedirs(cache_dir)
        fsops.unlink(request.manifest)
        return {"failed": str(exc)}
    return stats.as_dict()
