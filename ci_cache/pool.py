"""Warm job caches: a finished job's cache, kept in the root's pool for the next job to refresh, not reseed.

Seeding links every archive a job may need and copies every pointer: on a disk that is as long as the warm
install itself, and deleting it all again at finish costs as much. A job that runs again on the agent (most
jobs do) needs the same files. So at finish, a trusted isolated job's cache goes to the pool, by one rename
(`give_back`); at setup, a job of the same scope takes one out, by one rename (`claim`), and the tool
refreshes it in place into exactly what a fresh seed would have made (for uv: `tools/uv/warm.py`), which
costs directory listings and a stat per copied file instead of a new link or copy per file.

`<root>/pool/<tool>/<scope>.<stamp>`: the scope is `full`, or a hash of the packages the job's key files
name (a job is only offered a cache of its own scope: a refresh is correct from any cache, but fast from
one that holds what the job needs); the stamp orders them by age.

Crash safety: every move is one rename within the root, so a kill -9 at any moment leaves a cache either
in the pool, whole, or in a job's dir (which `gc` reclaims with the dir, as for any dead job); never half of
it in either. A cache in the pool is never used as it is: the refresh makes it what a fresh seed would make
of the shared cache as it is now, so an entry that the shared cache has dropped since (a prune), a file a job
changed, or one it added, never reaches the next job. The shared cache is never written by any of this.

Trust: only trusted jobs give their cache back (an untrusted one's is deleted as before), since a job that
means to can write a copied file and set its old mtime back, which the refresh cannot tell apart from the
shared file. A trusted job can write to the shared cache through the merge anyway.

Bounds: at most `pool.size` caches per tool (the oldest beyond that are deleted at give-back), none older
than `pool.max_age` (skipped by `claim`, deleted by `gc`), and `prune` empties the pool of a cache it evicted
from, so that the pool's links never keep evicted archives on the disk.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from ci_cache import fsops, log, osapi
from ci_cache.digest import sha256_hex
from ci_cache.errors import CiCacheError
from ci_cache.store import Store

FULL = "full"


def pool_dir(store: Store, tool: str) -> Path:
    return store.root / "pool" / tool


def scope_tag(packages: frozenset[str] | None) -> str:
    """`full`, or a short hash of the package names the job's key files give."""
    return FULL if packages is None else "k" + sha256_hex("\n".join(sorted(packages)))[:12]


class Entry:
    """A cache in the pool: `<tag>.<stamp>`, the stamp the time (ns, hex) it was given back."""

    def __init__(self, path: Path, tag: str, stamp: int) -> None:
        self.path, self.tag, self.stamp = path, tag, stamp

    def age(self, now: float) -> float:
        return now - self.stamp / 1e9


def entries(store: Store, tool: str) -> list[Entry]:
    """The caches in a tool's pool, newest first (temp names, a delete's trash, left out)."""
    found = []
    try:
        names = os.listdir(pool_dir(store, tool))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        tag, _, rest = name.partition(".")
        stamp = rest.partition(".")[0]
        if tag and not fsops.is_temp_name(name) and stamp:
            with contextlib.suppress(ValueError):
                found.append(Entry(pool_dir(store, tool) / name, tag, int(stamp, 16)))
    return sorted(found, key=lambda e: e.stamp, reverse=True)


def claim(store: Store, tool: str, tag: str, target: Path, *, max_age: float) -> bool:
    """Move the newest cache of scope `tag` from the pool to `target` (which must not exist); False when
    there is none (or every one is taken by another job first)."""
    now = time.time()
    for entry in entries(store, tool):
        if entry.tag != tag or entry.age(now) > max_age:
            continue
        try:
            os.rename(osapi.extended_path(entry.path), osapi.extended_path(target))
        except OSError:
            continue  # another job took it first, or (Windows) a file in it is held open: try the next
        return True
    return False


def give_back(store: Store, tool: str, tag: str, cache: Path, *, size: int,
              env: Mapping[str, str] | None = None) -> bool:
    """Move a finished job's cache into the pool, then keep the pool to `size` caches; False when it stays
    (the pool is off, or the cache cannot be moved: a file held open on Windows), for the job's cleanup."""
    if size <= 0 or not cache.is_dir():
        return False
    folder = pool_dir(store, tool)
    try:
        fsops.makedirs(folder)
        os.rename(osapi.extended_path(cache),
                  osapi.extended_path(folder / f"{tag}.{time.time_ns():x}.{os.urandom(3).hex()}"))
    except (OSError, CiCacheError) as exc:
        log.info(f"the job's {tool} cache stays out of the pool ({exc}): it is deleted with the job's dir")
        return False
    for entry in entries(store, tool)[size:]:
        discard(entry.path, env)
    return True


def discard(path: Path, env: Mapping[str, str] | None = None) -> bool:
    """A cache out of the way at once (renamed to a temp name beside it) and deleted by a detached process;
    False when it cannot be moved (taken by a job meanwhile, or a file in it held open: gc tries again)."""
    try:
        away = fsops.rename_away(path)
    except (OSError, CiCacheError):
        return False
    if not osapi.start_background_delete(away, env):
        with contextlib.suppress(OSError, CiCacheError):
            fsops.rmtree(away)
    return True


def reclaim(store: Store, *, max_age: float, now: float | None = None,
            env: Mapping[str, str] | None = None) -> list[str]:
    """Caches older than `max_age`, and what a delete left in the pool (a temp name quiet for a minute):
    gone. Returns what was reclaimed."""
    now = time.time() if now is None else now
    reclaimed: list[str] = []
    try:
        tools = os.listdir(store.root / "pool")
    except (FileNotFoundError, NotADirectoryError):
        return reclaimed
    for tool in tools:
        for entry in entries(store, tool):
            if entry.age(now) > max_age:
                discard(entry.path, env)
                reclaimed.append(str(entry.path))
        with contextlib.suppress(OSError):
            for leftover in os.scandir(pool_dir(store, tool)):
                if fsops.is_temp_name(leftover.name) and now - leftover.stat(follow_symlinks=False).st_mtime > 60:
                    with contextlib.suppress(OSError, CiCacheError):
                        fsops.rmtree(Path(leftover.path))
                    reclaimed.append(leftover.path)
    return reclaimed


def empty(store: Store, tool: str, env: Mapping[str, str] | None = None) -> int:
    """Every cache of a tool's pool discarded (after a prune evicted from the shared cache); how many."""
    found = entries(store, tool)
    for entry in found:
        discard(entry.path, env)
    return len(found)
