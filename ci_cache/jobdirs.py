"""The dirs of jobs under a root: a fresh one per allocation, and the leftovers of finished and dead ones.

A job's dir is `jobs/<key>.<gen>`, where `<gen>` is new for every allocation: so a new allocation of a job id
never waits for, nor deletes, what an earlier one left. (On Windows a dir with a file held open inside, by
an antivirus scan or a process the job left behind, can be neither moved nor deleted until it is let go.)
Each allocation's record is beside its dir, `<key>.<gen>.json`, written once by its setup: no file is ever
replaced, so a scan holding one (it holds every file it has not seen before, for seconds) never stands in
the way of a job. Dirs of older versions, `jobs/<key>`, are still found (their record is `<key>.json`).

A finished job's dir is moved out of the way at once (renamed to a temp name, which `gc` knows as trash)
and deleted by a detached process. When it cannot be moved, it stays, and its record is renamed to
`<dir>.finished` beside it: that says the job finished, so `gc` reclaims the dir as soon as it can,
without the grace period that the dirs of jobs that died get; and, unlike the record, it outlives the
id's next allocation. A record a scan holds (it holds every file it has not seen before) can be neither
deleted nor renamed: then the mark is made anew, and gc drops the record with it. Finish makes one attempt
at each of these, so that it never waits for a scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ci_cache import fsops, osapi
from ci_cache.errors import CiCacheError
from ci_cache.store import Store

FINISHED_SUFFIX = ".finished"
RECORD_SUFFIX = ".json"
_GEN_RE = re.compile(r"\.[0-9a-f]{4}\Z")


def record_of(job_dir: Path) -> Path:
    return job_dir.with_name(job_dir.name + RECORD_SUFFIX)


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(job_dir: Path, data: dict[str, Any]) -> None:
    # Not durable: a record lives as long as its job, and a crash of the machine ends the job.
    fsops.write_atomic(record_of(job_dir), json.dumps(data, indent=2, sort_keys=True).encode(), durable=False)


def record_dirs(store: Store, key: str, names: Iterable[str], *, unfinished: bool = False) -> list[Path]:
    """The dirs (whether or not they still exist) of `key`'s allocations whose records are among `names`,
    from the names alone. `unfinished`: only those not marked finished (a live job's, or a dead one's); a
    finished job's record is left only when a scan held it at finish, and is gc's to drop."""
    names = list(names)
    found = []
    for name in names:
        stem = name.removesuffix(RECORD_SUFFIX)
        if stem != name and (stem == key or (stem.startswith(key + ".") and _GEN_RE.fullmatch(stem[len(key):]))):
            job_dir = store.jobs_dir / stem
            if not (unfinished and is_finished(job_dir, names)):
                found.append(job_dir)
    return found


def unfinished_records(store: Store, key: str, names: Iterable[str]) -> list[dict[str, Any]]:
    """The records of `key`'s allocations that are not marked finished, read, newest first (an unreadable
    one is empty); each names its dir (`dir`)."""
    found = []
    for job_dir in record_dirs(store, key, names, unfinished=True):
        data = read_record(record_of(job_dir)) or {}
        data.setdefault("dir", str(job_dir))
        found.append(data)
    return sorted(found, key=lambda r: float(r.get("created") or 0), reverse=True)


def current_record(store: Store, key: str) -> dict[str, Any] | None:
    """The newest record of `key` that is not marked finished: its live allocation's, if it has one."""
    return next(iter(unfinished_records(store, key, listing(store))), None)


def new_dir(store: Store, key: str) -> Path:
    """Make a dir of its own for a new allocation of `key`, whatever earlier ones of the id left."""
    fsops.makedirs(store.jobs_dir)
    while True:
        path = store.jobs_dir / f"{key}.{os.urandom(2).hex()}"  # secrets.token_hex, without importing secrets
        with contextlib.suppress(FileExistsError):
            fsops.mkdir(path)
            return path


def listing(store: Store) -> list[str]:
    """The names in the jobs dir (one listing serves every key)."""
    try:
        return os.listdir(store.jobs_dir)
    except FileNotFoundError:
        return []


def dirs_of(store: Store, key: str, names: Iterable[str]) -> list[Path]:
    """The job dirs of `key` among `names`: each allocation's `<key>.<gen>`, and an old version's `<key>`."""
    found = []
    for name in names:
        if name == key or (name.startswith(key + ".") and _GEN_RE.fullmatch(name[len(key):])):
            path = store.jobs_dir / name
            if path.is_dir():
                found.append(path)
    return sorted(found)


def current(store: Store, key: str, record: Mapping[str, Any]) -> Path:
    """The dir a record names (records of older versions name none: theirs was `jobs/<key>`)."""
    named = record.get("dir")
    return Path(named) if isinstance(named, str) and named else store.job_dir(key)


def finished_mark(job_dir: Path) -> Path:
    """Beside a dir that finish could not move away: its record, saying that the job finished."""
    return job_dir.with_name(job_dir.name + FINISHED_SUFFIX)


def is_finished(job_dir: Path, names: Iterable[str]) -> bool:
    return job_dir.name + FINISHED_SUFFIX in names


def trash(store: Store, names: Iterable[str]) -> list[Path]:
    """Dirs moved out of the way for a delete (a background one may still be working on them)."""
    return [store.jobs_dir / n for n in sorted(names) if n.startswith(fsops.TEMP_PREFIX)]


# A scan holds a file for seconds, longer than a job should wait: a dir that cannot move now stays.
ONE_ATTEMPT = fsops.RetryBudget(attempts=1)


def move_away(job_dir: Path) -> Path:
    """Rename a dir to a temp name beside it (trash), in one attempt; OSError (StoreError when a file in it
    is held open) when it cannot be moved now."""
    away = fsops.temp_sibling(job_dir)
    fsops.with_retry(lambda: os.rename(osapi.extended_path(job_dir), osapi.extended_path(away)),
                     f"move {job_dir} out of the way", ONE_ATTEMPT)
    return away


def discard(job_dir: Path, env: Mapping[str, str] | None) -> Path | None:
    """Move a dir nobody uses any more out of the way and have a detached process delete it; nobody waits.
    Returns where it went (it stays there for `gc` when no detached delete can start), or None when it
    cannot be moved now and stays where it is."""
    try:
        away = move_away(job_dir)
    except (OSError, CiCacheError):
        return None
    osapi.start_background_delete(away, env)
    return away


def why_not(exc: BaseException) -> str:
    """An OS error's own words, once (a StoreError of fsops carries it as its cause, with a hint)."""
    cause = exc.__cause__ if isinstance(exc, CiCacheError) and exc.__cause__ is not None else exc
    return getattr(cause, "strerror", None) or str(cause)


def mark_finished(job_dir: Path, record: Path) -> None:
    """Say that the job of `job_dir` is over, and never wait to say it: its record renamed to the mark in
    one attempt; or, when that cannot be (a scan holds the record, as it holds any file it has not seen
    before), a mark made anew with the record's content. Making a file waits for nobody; the record left
    beside it names the same dir, and gc drops both."""
    mark = finished_mark(job_dir)
    try:
        fsops.with_retry(lambda: os.rename(osapi.extended_path(record), osapi.extended_path(mark)),
                         f"rename {record}", ONE_ATTEMPT)
        return
    except FileNotFoundError:
        content = b""
    except (OSError, CiCacheError):
        try:
            content = record.read_bytes()  # a scan shares reading
        except OSError:
            content = b""
    with open(osapi.extended_path(mark), "wb") as fh:
        fh.write(content or json.dumps({"dir": str(job_dir)}).encode())


def try_delete(path: Path) -> None:
    """Delete a file in one attempt (OSError, or StoreError when it is held open)."""
    try:
        fsops.with_retry(lambda: os.unlink(osapi.extended_path(path)), f"delete {path}", ONE_ATTEMPT)
    except FileNotFoundError:
        return


def drop_record(record: Path, job_dir: Path) -> None:
    """Delete a finished job's record in one attempt; when a scan holds it, mark the job finished instead,
    so that gc drops the record as soon as it can, and no one waits for it now."""
    try:
        try_delete(record)
    except (OSError, CiCacheError):
        mark_finished(job_dir, record)


def marks(key: str, names: Iterable[str]) -> list[str]:
    """The names of the key's finished marks, each `<dir name>.finished`."""
    return sorted(n for n in names if n.startswith(key + ".") and n.endswith(FINISHED_SUFFIX))
