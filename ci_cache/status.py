"""What is on this agent: shared caches and their sizes, live jobs, stale jobs."""

from __future__ import annotations

import time
from typing import Any

from ci_cache import fsops, gc, lease
from ci_cache.store import Store


def collect(store: Store) -> dict[str, Any]:
    now = time.time()
    caches = {}
    for name in store.shared_tools():
        files, size = fsops.tree_size(store.shared_cache(name))
        caches[name] = {"path": str(store.shared_cache(name)), "files": files, "bytes": size}
    live: list[dict[str, Any]] = []
    stale: list[dict[str, Any]] = []
    for key in store.job_keys():
        record = store.read_record(key) or {}
        info = {"key": key, "job": record.get("job"), "mode": record.get("mode"),
                "age_seconds": round(gc.job_age(store, key, now), 1), "dir": str(store.job_dir(key))}
        (live if lease.is_held(store.lease(key)) else stale).append(info)
    return {"root": str(store.root), "shared": caches, "live_jobs": live, "stale_jobs": stale}


def render(data: dict[str, Any]) -> str:
    lines = [f"root: {data['root']}"]
    if not data["shared"]:
        lines.append("shared caches: none yet")
    for name, info in data["shared"].items():
        lines.append(f"shared {name}: {info['path']} ({info['files']} files, {info['bytes'] / 2**20:.1f} MiB)")
    lines.append(f"live jobs: {len(data['live_jobs'])}")
    lines += [f"  {j['job']} ({j['mode']}, {j['age_seconds']:.0f}s) {j['dir']}" for j in data["live_jobs"]]
    lines.append(f"stale jobs: {len(data['stale_jobs'])}" + (" (run `ci-cache gc`)" if data["stale_jobs"] else ""))
    lines += [f"  {j['job']} ({j['age_seconds']:.0f}s) {j['dir']}" for j in data["stale_jobs"]]
    return "\n".join(lines)
