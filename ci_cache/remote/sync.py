"""Pull what a job needs from the remote into a cache, and push what a cache gained: tool-agnostic.

The tool's codec (`CacheTool.remote`) says what to look for and how entries map to its cache; this
module moves them: LISTs and GETs in parallel under one time budget, blobs verified by sha256 into
temp files beside the cache, entries published blobs first and create-if-absent. A RemoteError never
escapes (unless `strict`): it becomes a one-line warning in the report, and the job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_cache import fsops
from ci_cache.errors import LockTimeout, RemoteError
from ci_cache.remote import layout
from ci_cache.remote.budget import Budget
from ci_cache.remote.cas import Cas
from ci_cache.remote.layout import BlobRef, Entry
from ci_cache.remote.objectstore import ObjectStore
from ci_cache.remote.progress import ProgressFactory
from ci_cache.remote.reports import PullReport, PushReport
from ci_cache.remote.transfer import Batch, run_all
from ci_cache.tools.base import PRESENT, EntryId, Export, ImportStats, Pulled, PullSession, RemoteCodec, Wanted

# Held around an install into the cache, given the seconds it may wait (ci-cache's writer lock).
Guard = Callable[[float], AbstractContextManager[object]]
# Above this many entries to push, one LIST per namespace root beats a HEAD per entry.
_LIST_INSTEAD_OF_HEAD = 32
# Packing holds a whole archive in memory: only this many at once.
_PACKING = 4
# Blobs above this size are looked for (HEAD) before they are uploaded.
_ASK_FIRST = 8 << 20


class _Errors:
    """RemoteErrors met along the way, summed up as one warning line per kind of failure."""

    def __init__(self) -> None:
        self.first: dict[str, RemoteError] = {}
        self.count: dict[str, int] = {}

    def add(self, error: RemoteError) -> None:
        self.first.setdefault(error.kind, error)
        self.count[error.kind] = self.count.get(error.kind, 0) + 1

    def add_batch(self, batch: Batch[Any, Any]) -> None:
        for outcome in batch.failed:
            assert outcome.error is not None
            self.add(outcome.error)

    def lines(self) -> list[str]:
        out = []
        for kind, error in self.first.items():
            more = self.count[kind] - 1
            out.append(str(error) + (f" (and {more} more like it)" if more else ""))
        return out

    def raise_first(self) -> None:
        if self.first:
            raise next(iter(self.first.values()))


def _today() -> datetime:
    return datetime.now(UTC)


async def _list(store: ObjectStore, budget: Budget, namespaces: Sequence[str], concurrency: int,
                errors: _Errors) -> list[EntryId]:
    batch = await run_all(list(namespaces), lambda ns: store.list(f"{layout.ENTRIES}{ns}/"),
                          concurrency=concurrency, budget=budget, where=store.where)
    errors.add_batch(batch)
    found: list[EntryId] = []
    for outcome in batch.succeeded:
        for meta in outcome.result or []:
            entry_id = layout.parse_entry_key(meta.key)
            if entry_id is not None:
                found.append(entry_id)
    return found


async def pull(store: ObjectStore, codec: RemoteCodec, cache: Path, wanted: Wanted, budget: Budget, *,
               concurrency: int = 16, max_blob_size: int = 2 << 30, progress: ProgressFactory | None = None,
               strict: bool = False, mark_used: bool = True, staging: Path | None = None,
               guard: Guard | None = None, planned: tuple[PullSession, Sequence[str]] | None = None) -> PullReport:
    """Fetch what `wanted` names and `cache` lacks, verify it and install it into `cache`.

    Blobs land in `staging` (a folder made and deleted here; default: a temp folder inside `cache`).
    `guard(timeout)` is held around each install into `cache` (ci-cache's writer lock, taken within what
    is left of the budget); without it, the caller holds that lock for the whole pull. `mark_used`
    records each entry read as used today (GC keeps used entries); a read-only credential's refusal of
    that is not a warning. `planned`: the session the caller made and its first `lookups()` (a caller that
    finds nothing to look up need not start a pull at all).
    """
    puller = _Puller(Cas(store, max_blob_size=max_blob_size), budget, concurrency, progress)
    puller.cache = cache
    puller.staging_path = staging
    session, first = planned or _plan(codec, cache, wanted)
    try:
        await puller.run(session, first, mark_used=mark_used, guard=guard)
    finally:
        # A blob still being prepared when the budget ran out finishes first: its folder goes with the rest.
        puller.preparing.shutdown(wait=True, cancel_futures=True)
        if puller.staging is not None:
            fsops.rmtree(puller.staging)
    puller.report.warnings.extend(puller.errors.lines())
    puller.report.seconds = budget.elapsed()
    if strict:
        puller.errors.raise_first()
    return puller.report


def _plan(codec: RemoteCodec, cache: Path, wanted: Wanted) -> tuple[PullSession, list[str]]:
    session = codec.pull_session(cache, wanted)
    return session, session.lookups()


class _Puller:
    """One pull: its budget, its errors, its report, and the temp folder its blobs land in."""

    def __init__(self, cas: Cas, budget: Budget, concurrency: int, progress: ProgressFactory | None) -> None:
        self.cas = cas
        self.store = cas.store
        self.budget = budget
        self.concurrency = concurrency
        self.progress = progress
        self.errors = _Errors()
        self.report = PullReport()
        self.cache = Path()
        self.staging_path: Path | None = None
        self.staging: Path | None = None  # set once made
        # Preparing blobs is CPU work (unpacking): one thread per core, beside the downloads.
        self.preparing = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                            thread_name_prefix="ci-cache-prepare")

    async def run(self, session: PullSession, first: Sequence[str], *, mark_used: bool, guard: Guard | None) -> None:
        report = self.report
        report.warnings.extend(session.notes())
        namespaces = list(first)
        while namespaces and not self.budget.expired:
            report.lookups += len(namespaces)
            chosen = session.choose(await _list(self.store, self.budget, namespaces, self.concurrency, self.errors))
            read = await run_all(chosen, lambda i: self.cas.get_entry(*i), concurrency=self.concurrency,
                                 budget=self.budget, where=self.store.where)
            self.errors.add_batch(read)
            entries = [o.result for o in read.succeeded if o.result is not None]  # None: gc deleted it meanwhile
            report.entries_read += len(entries)
            take: list[Entry] = []
            for entry in entries:
                verdict = session.accept(entry)
                if verdict is None:
                    take.append(entry)
                elif verdict == PRESENT:
                    report.entries_present += 1
                    session.present(entry)
                else:
                    report.entries_skipped.append(f"{entry.namespace}/{entry.key}: {verdict}")
            # The used marks go up while the blobs come down: neither waits for the other.
            marking = asyncio.ensure_future(_mark_used(self.cas, entries, self.budget, self.concurrency)) \
                if mark_used and entries else None
            try:
                pulled = await self._fetch_blobs(session, take)
                stats = self._install(session, pulled, guard)
            finally:
                if marking is not None:
                    await marking  # bounded by the budget; a refused mark is no error
            if stats is None:
                break
            report.entries_installed += stats.entries
            report.entries_present += stats.kept_existing
            report.entries_skipped.extend(stats.skipped)
            installed_ids = set(stats.installed)
            namespaces = session.next_round([p.entry for p in pulled
                                             if (p.entry.namespace, p.entry.key) in installed_ids])
        if namespaces and self.budget.expired:
            self.errors.add(self.budget.exceeded(self.store.where))
        report.missing = session.unmet()

    def _install(self, session: PullSession, pulled: list[Pulled], guard: Guard | None) -> ImportStats | None:
        """Install under the guard; None (and an error) when the guard could not be had in time."""
        if not pulled or guard is None:
            return session.install(pulled)
        try:
            with guard(max(1.0, self.budget.remaining() or 0.0)):
                return session.install(pulled)
        except LockTimeout as exc:
            self.errors.add(RemoteError(f"{len(pulled)} pulled entr{'y' if len(pulled) == 1 else 'ies'} not "
                                        f"installed: {exc.message}", kind="timeout", hint=exc.hint))
            return None

    async def _fetch_blobs(self, session: PullSession, take: list[Entry]) -> list[Pulled]:
        """Every blob the entries name, downloaded once each, verified and prepared (`PullSession.prepare`);
        the entries whose blobs all came."""
        refs: dict[str, BlobRef] = {}
        roles: dict[str, str] = {}
        for entry in take:
            for role, ref in entry.blobs.items():
                refs[ref.digest] = ref
                roles.setdefault(ref.digest, role)
        if not refs:
            return [Pulled(e, {}) for e in take]
        if self.staging is None:
            self.staging = self.staging_path or \
                self.cache / f"{fsops.TEMP_PREFIX}pull-{os.getpid()}-{random.getrandbits(32):08x}"
            fsops.makedirs(self.staging)
        staging = self.staging
        bar = self.progress("pulling", len(refs), sum(r.size for r in refs.values())) if self.progress else None

        async def fetch(digest: str) -> int:
            await self.cas.get_blob_to(refs[digest], staging / digest)
            await asyncio.wrap_future(self.preparing.submit(session.prepare, staging / digest, roles[digest]))
            return refs[digest].size

        batch = await run_all(sorted(refs), fetch, concurrency=self.concurrency, budget=self.budget,
                              where=self.store.where, progress=bar, size_of=lambda _d, size: size)
        self.errors.add_batch(batch)
        got = {o.item for o in batch.succeeded}
        self.report.blobs += len(got)
        self.report.bytes += sum(refs[d].size for d in got)
        pulled = []
        for entry in take:
            if all(ref.digest in got for ref in entry.blobs.values()):
                pulled.append(Pulled(entry, {role: staging / ref.digest for role, ref in entry.blobs.items()}))
            else:
                self.report.entries_skipped.append(f"{entry.namespace}/{entry.key}: a blob it names could not be "
                                                   "fetched")
        return pulled


async def _mark_used(cas: Cas, entries: list[Entry], budget: Budget, concurrency: int) -> None:
    """Best effort: a used mark that cannot be written (read-only credentials, a slow remote) is no loss."""
    day = _today().date()
    await run_all(entries, lambda e: cas.mark_used(e.namespace, e.key, day), concurrency=concurrency,
                  budget=budget, where=cas.store.where)


async def push(store: ObjectStore, codec: RemoteCodec, cache: Path, groups: Sequence[str] | None, budget: Budget, *,
               concurrency: int = 16, max_blob_size: int = 2 << 30, progress: ProgressFactory | None = None,
               strict: bool = False) -> PushReport:
    """Publish the entries of `groups` (cache-relative, as `codec.groups` names them; None: the whole cache)
    that the remote lacks: blobs before their entry, every write create-if-absent.

    The codec's `hold` keeps what is packed from being deleted meanwhile (archives never change once in).
    """
    with codec.hold(cache, timeout=max(1.0, budget.remaining() or 0.0)):
        return await _push(store, codec, cache, groups, budget, concurrency=concurrency,
                           max_blob_size=max_blob_size, progress=progress, strict=strict)


async def _push(store: ObjectStore, codec: RemoteCodec, cache: Path, groups: Sequence[str] | None, budget: Budget, *,
                concurrency: int, max_blob_size: int, progress: ProgressFactory | None, strict: bool) -> PushReport:
    report = PushReport()
    errors = _Errors()
    cas = Cas(store, max_blob_size=max_blob_size)
    plan = await asyncio.to_thread(codec.exports, cache, groups)
    report.entries = len(plan.items)
    report.skipped = plan.skipped
    existing: set[EntryId] | None = None
    if len(plan.items) > _LIST_INSTEAD_OF_HEAD:
        listed = await _list(store, budget, plan.roots, concurrency, errors)
        existing = set(listed) if not errors.first else None
    packing = asyncio.Semaphore(_PACKING)
    blob_tasks: dict[str, asyncio.Task[bool]] = {}

    async def put_blob(data: bytes) -> BlobRef:
        ref = BlobRef(layout.check_digest(_sha256(data)), len(data))
        task = blob_tasks.get(ref.digest)
        if task is None:
            task = asyncio.ensure_future(_publish_blob(cas, data))
            blob_tasks[ref.digest] = task
            created = await task
            report.blobs_pushed += int(created)
            report.blobs_present += int(not created)
            report.bytes += len(data) if created else 0
        else:
            await task
        return ref

    async def present(item: Export) -> str:
        await _best_effort(cas.mark_used(item.namespace, item.key, _today().date()))
        return "present"

    async def one(item: Export) -> str:
        if existing is not None and (item.namespace, item.key) in existing:
            return await present(item)
        # What is pushed is mostly new (the job added it): it is packed while the remote is asked whether it
        # has the entry. Nothing is sent before the answer: a job that pulled nothing (no key files) has much
        # locally new that the fleet already holds.
        async with packing:
            building = asyncio.ensure_future(asyncio.to_thread(item.build))
            try:
                there = existing is None and await store.head(layout.entry_key(item.namespace, item.key)) is not None
            finally:
                built = await building
            if there:
                return await present(item)
            refs = {role: await put_blob(data) for role, data in built.blobs.items()}
        entry = Entry(item.namespace, item.key, refs, files=dict(built.files), meta=dict(built.meta))
        return "pushed" if await cas.put_entry(entry) else "present"

    bar = progress("pushing", len(plan.items), None) if progress and plan.items else None
    batch = await run_all(plan.items, one, concurrency=concurrency, budget=budget, where=store.where, progress=bar)
    errors.add_batch(batch)
    for task in blob_tasks.values():
        if not task.done():
            task.cancel()
    report.entries_pushed = sum(1 for o in batch.succeeded if o.result == "pushed")
    report.entries_present = sum(1 for o in batch.succeeded if o.result == "present")
    report.warnings.extend(errors.lines())
    report.seconds = budget.elapsed()
    if strict:
        errors.raise_first()
    return report


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _publish_blob(cas: Cas, data: bytes) -> bool:
    """Create the blob unless the remote has it. A big blob is asked about first (a HEAD spares uploading
    what is there); a small one is sent at once, create-if-absent: a round trip costs more than sending it
    again in the rare case that another entry already brought the same bytes."""
    if len(data) > _ASK_FIRST and await cas.has_blob(_sha256(data)):
        return False
    _ref, created = await cas.put_blob(data)
    return created


async def _best_effort(work: Any) -> None:
    with contextlib.suppress(RemoteError):
        await work
