"""The root's layout version: recorded in the root, checked by every user, migrated in place when older.

`<root>/layout.json` says which layout the root has and which ci-cache wrote it. A ci-cache never writes
to a root of a newer layout than its own (`LAYOUT`), and migrates an older one before using it. A root
without the file is either new (nothing in it yet: it gets `LAYOUT`) or was made by a ci-cache from
before layouts were recorded (layout 0).

`<root>/layout.lock` guards the layout: every process that uses the root holds it shared for as long as
it does (`run`; setup's lease holder, for the whole job; finish; gc; prune; verify --fix), and a
migration that jobs of the older layout could not survive holds it exclusive. So such a migration runs
only when no job of the older layout is alive, and no job starts while it runs; one that finds jobs of
the older layout alive refuses (the job runs without ci-cache, saying why) and the first ci-cache after
them migrates. A migration that the running jobs of the layout it starts from survive (0 -> 1, which only
records the version; 1 -> 2 for jobs of layout 0, whose records keep their names) runs at once. Every step
is idempotent and the version is recorded after each step, atomically (temp file, then rename), so a
migration killed half way is finished by the next process.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ci_cache import __version__, faults, fsops, jobdirs, locks, osapi
from ci_cache.errors import StoreError
from ci_cache.store import Store

# The layout this ci-cache reads and writes. Layout 0: a root from before layouts were recorded (no
# layout.json); the same folders as layout 1. Layout 2: each allocation's record beside its dir
# (`jobs/<key>.<gen>.json`), no longer one per job id (`jobs/<key>.json`).
LAYOUT = 2
UPGRADE_DOC = "docs/upgrading.md"


class Migration(NamedTuple):
    """One step from layout `to - 1` to `to`. `breaks`: the layouts whose running jobs would not survive it
    (their ci-cache refuses a newer layout, or looks for what the step moves), so it waits for them to end."""

    to: int
    what: str
    breaks: frozenset[int]
    run: Callable[[Store], None]


def _record_only(_store: Store) -> None:
    """0 -> 1 changes no folder: the version in layout.json is all that layout 1 adds."""


def _records_beside_their_dirs(store: Store) -> None:
    """1 -> 2: `jobs/<key>.json` renamed to `jobs/<dir>.json`, for the dir it names: a job of layout 1 would
    look for its record under the old name. A record that names no dir of its own (layout 0's) keeps its
    name, which layout 2 reads as the record of `jobs/<key>`, layout 0's dir, as it was."""
    try:
        names = os.listdir(store.jobs_dir)
    except FileNotFoundError:
        return
    for name in names:
        key = name.removesuffix(jobdirs.RECORD_SUFFIX)
        if key == name or "." in key or fsops.is_temp_name(name):
            continue
        record = jobdirs.read_record(store.jobs_dir / name) or {}
        named = Path(str(record.get("dir") or store.jobs_dir / key))
        if named.parent == store.jobs_dir and named.name.startswith(key + "."):
            fsops.replace(store.jobs_dir / name, jobdirs.record_of(named))


# Keyed by the layout each step starts from.
MIGRATIONS: dict[int, Migration] = {
    0: Migration(1, "record the layout version", breaks=frozenset(), run=_record_only),
    1: Migration(2, "each allocation's record beside its dir", breaks=frozenset({1}), run=_records_beside_their_dirs),
}


class Recorded(NamedTuple):
    layout: int
    written_by: str


def read(store: Store) -> Recorded | None:
    """What layout.json says; None when there is none. A file that is not ours is refused, never guessed at."""
    path = store.layout_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the layout version of the ci-cache root {store.root} from {path}: "
                         f"{exc.strerror or exc}", hint=f"give the agent's user access to {path}") from exc
    try:
        data = json.loads(text)
        layout, written_by = data["layout"], data.get("written_by", "an unknown ci-cache")
        if not isinstance(layout, int) or isinstance(layout, bool) or layout < 0 or not isinstance(written_by, str):
            raise ValueError(f"layout {layout!r}")
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(
            f"{path} is not a layout record ci-cache can read ({exc}); ci-cache will not guess the layout of "
            f"the root {store.root}",
            hint=f"if nothing else wrote it, delete the root {store.root} (it is only a cache) and let the next "
            "job start it anew") from exc
    return Recorded(layout, written_by)


def write(store: Store, layout: int, *, previous: int | None = None) -> None:
    record: dict[str, Any] = {"layout": layout, "written_by": f"ci-cache {__version__}", "written": time.time()}
    if previous is not None:
        record["migrated_from"] = previous
    fsops.write_atomic(store.layout_file, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def current(store: Store) -> int | None:
    """The root's layout: recorded, 0 for a root from before layouts were recorded, None for an empty one."""
    recorded = read(store)
    if recorded is not None:
        return recorded.layout
    for folder in (store.shared_dir, store.jobs_dir):
        try:
            if any(True for _ in folder.iterdir()):
                return 0
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def open_root(store: Store, *, timeout: float) -> osapi.FileLockHandle:
    """The root made (`Store.ensure`), at this ci-cache's layout, held shared (`use`), for a job's setup.

    No probe file: the job's lease and record are its first writes, and a failure of either says what
    stops it as clearly (a full disk, a read-only file system, ...). One file less to create and delete
    per job, and one less for a scanner to hold.
    """
    store.ensure(probe=False)
    try:
        return use(store, timeout=timeout)
    except OSError as exc:
        raise faults.store_error(exc, store.root, f"the ci-cache root {store.root} is not usable") from exc


@contextlib.contextmanager
def holding(store: Store, *, timeout: float) -> Iterator[None]:
    """`use` around the work of a command that looks after a root (gc, prune, verify --fix); no root, no
    hold (nothing to look after, and nothing is created)."""
    if not store.root.is_dir():
        yield
        return
    try:
        hold = use(store, timeout=timeout)
    except OSError as exc:
        raise faults.store_error(exc, store.root, f"the ci-cache root {store.root} is not usable") from exc
    with hold:
        yield


def use(store: Store, *, timeout: float) -> osapi.FileLockHandle:
    """Hold the root's layout shared, once it is `LAYOUT`: a new root gets it, an older one is migrated, a
    newer one refused. The caller keeps the handle while it uses the root; releasing it ends the hold."""
    while True:
        hold, _waited = locks.acquire(store.layout_lock, timeout=timeout, shared=True,
                                      purpose="the root's layout: a migration is running")
        try:
            found = current(store)
            if found == LAYOUT:
                return hold
            if found is None:
                write(store, LAYOUT)  # a new root: same content whoever writes it, so no lock is needed
                return hold
            if found > LAYOUT:
                raise newer_layout_error(store)
        except BaseException:
            hold.release()
            raise
        hold.release()
        migrate(store, found)


def newer_layout_error(store: Store) -> StoreError:
    recorded = read(store)
    assert recorded is not None
    return StoreError(
        f"the ci-cache root {store.root} has layout {recorded.layout}, written by {recorded.written_by}; this "
        f"ci-cache {__version__} knows layouts up to {LAYOUT} and will not write to it",
        hint=f"upgrade ci-cache on this agent to the version that wrote it (see {UPGRADE_DOC}), or give this one "
        "its own root with `root:` in ci-cache.yml (CI_CACHE_ROOT)")


def migrate(store: Store, found: int) -> None:
    """Bring the root from layout `found` to LAYOUT, or return when another process is doing it (the
    caller then waits for its shared hold and looks again). Refuses while jobs of the old layout run."""
    steps = _steps_from(store, found)
    if not any(found in step.breaks for step in steps):
        _run_steps(store, found)
        return
    exclusive = locks.try_lock(store.layout_lock)
    if exclusive is None:
        jobs = locks.try_lock(store.layout_lock, shared=True)
        if jobs is None:
            return  # a migration holds it exclusive: wait for it
        jobs.release()
        _refuse_while_running(store, found, "jobs of the old layout are still running")
        return
    with exclusive:
        again = current(store)
        if again is None or again >= LAYOUT:
            return
        live = _live_jobs(store)
        if live:  # jobs of a ci-cache from before the layout lock hold only their leases
            _refuse_while_running(store, again, f"{len(live)} job(s) still hold their lease ({', '.join(live)})")
        _run_steps(store, again)


def _steps_from(store: Store, found: int) -> list[Migration]:
    steps, layout = [], found
    while layout < LAYOUT:
        step = MIGRATIONS.get(layout)
        if step is None:
            raise StoreError(
                f"the ci-cache root {store.root} has layout {layout}, which this ci-cache {__version__} cannot "
                f"migrate to layout {LAYOUT}",
                hint=f"delete the root {store.root} (it is only a cache) while no job runs, or migrate it with an "
                f"earlier ci-cache first (see {UPGRADE_DOC})")
        steps.append(step)
        layout = step.to
    return steps


def _run_steps(store: Store, found: int) -> None:
    for step in _steps_from(store, found):
        step.run(store)
        write(store, step.to, previous=found)


def _refuse_while_running(store: Store, found: int, why: str) -> None:
    if current(store) == LAYOUT:
        return  # migrated meanwhile by someone else
    raise StoreError(
        f"the ci-cache root {store.root} has layout {found} and this ci-cache {__version__} must migrate it to "
        f"layout {LAYOUT}, but {why}",
        hint="the first job after they end migrates it (`ci-cache status` lists them); until then jobs run "
        f"without ci-cache (see {UPGRADE_DOC})")


def _live_jobs(store: Store) -> list[str]:
    live = []
    for key in store.job_keys():
        lease = store.lease(key)
        if not lease.exists():
            continue
        handle = locks.try_lock(lease)
        if handle is None:
            live.append(key)
        else:
            handle.release()
    return live
