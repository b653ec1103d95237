"""What is on this agent: shared caches and their sizes, live jobs, stale jobs, and finished jobs' dirs that
are still being deleted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ci_cache import fsops, gc, jobdirs, lease
from ci_cache.store import Store


def collect(store: Store) -> dict[str, Any]:
    now = time.time()
    caches = {}
    for name in store.shared_tools():
        files, size = fsops.tree_size(store.shared_cache(name))
        caches[name] = {"path": str(store.shared_cache(name)), "files": files, "bytes": size}
    names = jobdirs.listing(store)
    live: list[dict[str, Any]] = []
    stale: list[dict[str, Any]] = []
    finished: list[dict[str, Any]] = []
    for key in store.job_keys():
        dirs = jobdirs.dirs_of(store, key, names)
        for job_dir in [d for d in dirs if jobdirs.is_finished(d, names)]:
            dirs.remove(job_dir)
            finished.append({"key": key, "job": _mark_job(jobdirs.finished_mark(job_dir)), "dir": str(job_dir)})
        record = jobdirs.current_record(store, key)
        if record is None and not dirs and not lease.is_held(store.lease(key)):  # a lease file alone: gc's
            continue
        record = record or {}
        shown = jobdirs.current(store, key, record) if record or not dirs else dirs[0]
        info = {"key": key, "job": record.get("job"), "mode": record.get("mode"),
                "age_seconds": round(gc.job_age(store, key, now, dirs), 1), "dir": str(shown)}
        (live if lease.is_held(store.lease(key)) else stale).append(info)
    trash = [str(p) for p in jobdirs.trash(store, names)]
    return {"root": str(store.root), "shared": caches, "live_jobs": live, "stale_jobs": stale,
            "finished_jobs": finished, "trash": trash}


def _mark_job(mark: Path) -> str | None:
    """The job a finished mark names (it is the job's record, renamed)."""
    try:
        data = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("job") if isinstance(data, dict) else None


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
    finished, trash = data.get("finished_jobs", []), data.get("trash", [])
    if finished:
        lines.append(f"finished jobs whose dir was held open at finish: {len(finished)} (the next gc deletes them)")
        lines += [f"  {j['job']} {j['dir']}" for j in finished]
    if trash:
        lines.append(f"job dirs being deleted in the background: {len(trash)}")
    return "\n".join(lines)
