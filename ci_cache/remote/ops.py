"""Operations on a whole remote: status, verify (entries' blobs exist and match) and gc by use and age."""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ci_cache import fsops
from ci_cache.errors import RemoteError
from ci_cache.remote import layout
from ci_cache.remote.budget import Budget
from ci_cache.remote.cas import Cas
from ci_cache.remote.layout import BlobRef, Entry
from ci_cache.remote.objectstore import ObjectMeta
from ci_cache.remote.transfer import run_all

EntryId = tuple[str, str]


@dataclass
class Status:
    """What the remote holds, by kind and by namespace."""

    where: str
    objects: int = 0
    bytes: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    entries: dict[str, int] = field(default_factory=dict)
    # By a namespace's first segment: the tool and its cache's versions (uv: `uv-wheels-v7-archive-v0`).
    entries_by_version: dict[str, int] = field(default_factory=dict)
    entry_bytes: int = 0
    used_marks: int = 0
    used_days: list[str] = field(default_factory=list)
    other_objects: int = 0  # not ours: another layout version, or foreign objects under the prefix


@dataclass
class Listing:
    """One listing of the remote, sorted into blobs, entries and used marks."""

    blobs: dict[str, ObjectMeta] = field(default_factory=dict)
    entries: dict[EntryId, ObjectMeta] = field(default_factory=dict)
    used: dict[EntryId, date] = field(default_factory=dict)  # the latest day each entry was used
    marks: list[tuple[ObjectMeta, date]] = field(default_factory=list)
    other: list[ObjectMeta] = field(default_factory=list)


def sort_listing(objects: Iterable[ObjectMeta]) -> Listing:
    listing = Listing()
    for meta in objects:
        if (digest := layout.parse_blob_key(meta.key)) is not None:
            listing.blobs[digest] = meta
        elif (entry_id := layout.parse_entry_key(meta.key)) is not None:
            listing.entries[entry_id] = meta
        elif (mark := layout.parse_used_key(meta.key)) is not None:
            day, namespace, key = mark
            listing.marks.append((meta, day))
            if day > listing.used.get((namespace, key), date.min):
                listing.used[(namespace, key)] = day
        else:
            listing.other.append(meta)
    return listing


async def status(cas: Cas) -> Status:
    objects = await cas.store.list("")
    listing = sort_listing(objects)
    result = Status(where=cas.store.where, objects=len(objects), bytes=sum(o.size for o in objects))
    result.blobs = len(listing.blobs)
    result.blob_bytes = sum(m.size for m in listing.blobs.values())
    result.entries = dict(sorted(Counter(ns for ns, _ in listing.entries).items()))
    result.entries_by_version = dict(sorted(Counter(ns.split("/", 1)[0] for ns, _ in listing.entries).items()))
    result.entry_bytes = sum(m.size for m in listing.entries.values())
    result.used_marks = len(listing.marks)
    result.used_days = sorted({day.isoformat() for _, day in listing.marks})
    result.other_objects = len(listing.other)
    return result


@dataclass
class VerifyReport:
    where: str
    entries: int = 0
    blobs_referenced: int = 0
    blobs_hashed: int = 0
    unreferenced_blobs: int = 0  # garbage (an interrupted push), not a problem: `remote gc` reclaims it
    problems: list[str] = field(default_factory=list)
    broken_entries: list[str] = field(default_factory=list)  # entry keys: unreadable, or naming a bad blob
    bad_blobs: list[str] = field(default_factory=list)  # blob keys whose bytes do not match their name
    fixed: list[str] = field(default_factory=list)  # what `fix` deleted

    @property
    def ok(self) -> bool:
        return not self.problems


async def _read_entries(cas: Cas, ids: Iterable[EntryId], *, concurrency: int) -> dict[EntryId, Entry | RemoteError]:
    budget = Budget(None, what="reading entries")
    batch = await run_all(list(ids), lambda i: cas.get_entry(*i), concurrency=concurrency, budget=budget,
                          where=cas.store.where)
    out: dict[EntryId, Entry | RemoteError] = {}
    for outcome in batch.outcomes:
        if outcome.error is not None:
            if outcome.error.kind not in ("garbage", "not_found"):
                raise outcome.error  # the remote itself failed: the operation cannot go on
            out[outcome.item] = outcome.error
        elif outcome.result is not None:
            out[outcome.item] = outcome.result
    return out


async def verify(cas: Cas, *, sample: int | None = None, concurrency: int = 16,
                 seed: int | None = None) -> VerifyReport:
    """Every entry readable, every blob it names present with its size; blobs re-hashed (all, or a sample)."""
    listing = sort_listing(await cas.store.list(""))
    report = VerifyReport(where=cas.store.where, entries=len(listing.entries))
    entries = await _read_entries(cas, listing.entries, concurrency=concurrency)
    referenced: dict[str, BlobRef] = {}
    users: dict[str, list[EntryId]] = {}
    for entry_id, entry in sorted(entries.items()):
        namespace, key = entry_id
        if isinstance(entry, RemoteError):
            report.problems.append(f"entry {namespace}/{key}: {entry.message}")
            report.broken_entries.append(listing.entries[entry_id].key)
            continue
        for role, ref in sorted(entry.blobs.items()):
            meta = listing.blobs.get(ref.digest)
            problem = f"its {role} blob {ref.digest} is missing" if meta is None else \
                f"its {role} blob {ref.digest} has {meta.size} bytes, not {ref.size}" if meta.size != ref.size else None
            if problem:
                report.problems.append(f"entry {namespace}/{key}: {problem}")
                report.broken_entries.append(listing.entries[entry_id].key)
            else:
                referenced[ref.digest] = ref
                users.setdefault(ref.digest, []).append(entry_id)
    report.blobs_referenced = len(referenced)
    report.unreferenced_blobs = len(set(listing.blobs) - set(referenced))
    to_hash = sorted(referenced)
    if sample is not None and sample < len(to_hash):
        to_hash = random.Random(seed).sample(to_hash, sample)
    with tempfile.TemporaryDirectory(prefix="ci-cache-verify-") as tmp:

        async def check(digest: str) -> None:
            path = Path(tmp) / digest
            await cas.get_blob_to(referenced[digest], path)
            fsops.unlink(path)

        batch = await run_all(to_hash, check, concurrency=concurrency, budget=Budget(None, what="verify"),
                              where=cas.store.where)
    for outcome in batch.outcomes:
        if outcome.error is None:
            continue
        if outcome.error.kind not in ("corrupt", "garbage", "not_found"):
            raise outcome.error  # the remote itself failed: no verdict on this blob
        report.problems.append(f"blob {outcome.item}: {outcome.error.message}")
        if outcome.error.kind != "not_found":  # deleted meanwhile: its entries are only misses now
            report.bad_blobs.append(layout.blob_key(outcome.item))
        report.broken_entries += [listing.entries[i].key for i in users.get(outcome.item, [])]
    report.blobs_hashed = len(batch.succeeded)
    report.broken_entries = sorted(set(report.broken_entries))
    return report


async def fix(cas: Cas, report: VerifyReport, *, concurrency: int = 16) -> VerifyReport:
    """Delete what `verify` found broken: the entries first (a reader then misses, never fetches a bad
    blob), then the corrupt blobs, so that the next push of the same content publishes it again (a write
    never overwrites, so a damaged blob would otherwise stay for good). Needs the gc credential."""
    await _delete(cas, report.broken_entries, False, concurrency)
    await _delete(cas, report.bad_blobs, False, concurrency)
    report.fixed = [*report.broken_entries, *report.bad_blobs]
    return report


@dataclass
class GcReport:
    where: str
    dry_run: bool
    entries_kept: int = 0
    entries_deleted: list[str] = field(default_factory=list)
    blobs_kept: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    marks_deleted: int = 0


async def gc(cas: Cas, *, keep_days: int, grace: timedelta, now: datetime | None = None, dry_run: bool = False,
             concurrency: int = 16) -> GcReport:
    """Delete entries neither used nor created within `keep_days`, then blobs no entry names.

    An unreferenced blob is deleted only when older than `grace`, so that a push whose blobs are up but
    whose entry is not yet is never robbed. Entries that cannot be read, or that name a missing blob,
    are deleted too once older than `grace`: they can only ever be misses. Used marks older than
    `keep_days` go last. Deletions run entries first, then blobs, so no kept entry loses its blob.
    """
    now = now or datetime.now(UTC)
    keep_since = now - timedelta(days=keep_days)
    listing = sort_listing(await cas.store.list(""))
    report = GcReport(where=cas.store.where, dry_run=dry_run)

    def recent(meta: ObjectMeta, since: datetime) -> bool:
        return meta.modified >= since

    stale = {i for i, meta in listing.entries.items()
             if not recent(meta, keep_since) and listing.used.get(i, date.min) < keep_since.date()}
    live = await _read_entries(cas, set(listing.entries) - stale, concurrency=concurrency)
    referenced: set[str] = set()
    for entry_id, entry in live.items():
        meta = listing.entries[entry_id]
        broken = isinstance(entry, RemoteError) or any(r.digest not in listing.blobs for r in entry.blobs.values())
        if broken and not recent(meta, now - grace):
            stale.add(entry_id)
        elif isinstance(entry, Entry):
            referenced.update(r.digest for r in entry.blobs.values())
    report.entries_deleted = sorted(f"{ns}/{key}" for ns, key in stale)
    report.entries_kept = len(listing.entries) - len(stale)
    await _delete(cas, [listing.entries[i].key for i in sorted(stale)], dry_run, concurrency)

    candidates = {d for d, meta in listing.blobs.items() if d not in referenced and not recent(meta, now - grace)}
    if candidates:
        # Entries created while gc ran may name an old blob (another agent published the same content):
        # look again, and spare every blob they name.
        fresh = sort_listing(await cas.store.list(layout.ENTRIES)).entries
        new_ids = set(fresh) - set(listing.entries)
        for entry in (await _read_entries(cas, new_ids, concurrency=concurrency)).values():
            if isinstance(entry, Entry):
                candidates -= {r.digest for r in entry.blobs.values()}
    report.blobs_deleted = len(candidates)
    report.bytes_freed = sum(listing.blobs[d].size for d in candidates)
    report.blobs_kept = len(listing.blobs) - len(candidates)
    await _delete(cas, [listing.blobs[d].key for d in sorted(candidates)], dry_run, concurrency)

    old_marks = [meta.key for meta, day in listing.marks if day < keep_since.date()]
    report.marks_deleted = len(old_marks)
    await _delete(cas, old_marks, dry_run, concurrency)
    return report


async def _delete(cas: Cas, keys: list[str], dry_run: bool, concurrency: int) -> None:
    if dry_run or not keys:
        return
    batch = await run_all(keys, cas.store.delete, concurrency=concurrency, budget=Budget(None, what="gc"),
                          where=cas.store.where)
    if batch.failed:
        first = batch.failed[0].error
        assert first is not None
        raise first
