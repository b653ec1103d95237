"""The layout, CAS, operations, transfers and progress, over obstore's in-memory store (logic only)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from obstore.store import MemoryStore

from ci_cache.errors import RemoteError, UsageError
from ci_cache.remote import layout, ops
from ci_cache.remote.budget import Budget, run
from ci_cache.remote.cas import Cas, sha256_of
from ci_cache.remote.layout import BlobRef, Entry
from ci_cache.remote.obstore_store import ObstoreStore
from ci_cache.remote.progress import Progress, human_bytes
from ci_cache.remote.scrub import Scrubber
from ci_cache.remote.transfer import run_all


def _cas(max_blob_size: int = 1 << 20) -> Cas:
    store = ObstoreStore(MemoryStore(), where="memory://test", scrub=Scrubber(), credentials="none")
    return Cas(store, max_blob_size=max_blob_size)


def test_keys() -> None:
    digest = sha256_of(b"x")
    assert layout.blob_key(digest) == f"ci-cache-v1/blobs/{digest[:2]}/{digest}"
    assert layout.entry_key("uv/wheels-v5", "abc") == "ci-cache-v1/entries/uv/wheels-v5/abc.json"
    assert layout.used_key(date(2026, 1, 2), "uv/wheels-v5", "abc") == "ci-cache-v1/used/2026-01-02/uv/wheels-v5/abc"
    assert layout.parse_blob_key(layout.blob_key(digest)) == digest
    assert layout.parse_entry_key("ci-cache-v1/entries/uv/wheels-v5/abc.json") == ("uv/wheels-v5", "abc")
    assert layout.parse_used_key("ci-cache-v1/used/2026-01-02/ns/k") == (date(2026, 1, 2), "ns", "k")
    assert layout.parse_blob_key(f"ci-cache-v1/blobs/zz/{digest}") is None
    assert layout.parse_entry_key("ci-cache-v1/entries/x.txt") is None
    assert layout.parse_used_key("ci-cache-v1/used/notaday/ns/k") is None
    for bad in ("", "a//b", "../x", "a/" * 9 + "a", "sp ace"):
        with pytest.raises(UsageError):
            layout.check_namespace(bad)
    for bad in ("a/b", "", ".hidden", "x" * 101):
        with pytest.raises(UsageError):
            layout.check_key(bad)
    with pytest.raises(UsageError):
        layout.blob_key("ABC")


def test_entry_round_trip_and_garbage() -> None:
    entry = Entry("uv/w", "k", {"archive": BlobRef("a" * 64, 10)}, files={"k.http": b"\x00\xff"}, meta={"v": 1},
                  created="2026-01-01T00:00:00Z")
    data = entry.encode()
    assert data == entry.encode()  # stable bytes
    assert Entry.decode(data, where="x") == entry
    for junk in (b"not json", b"[]", b'{"layout": "ci-cache-v9"}', data.replace(b'"size":10', b'"size":-1'),
                 data.replace(b"aaaa", b"zzzz"), b"\xff\xfe"):
        with pytest.raises(RemoteError) as caught:
            Entry.decode(junk, where="the/key")
        assert caught.value.kind == "garbage" and "the/key" in str(caught.value)
    with pytest.raises(UsageError, match="more than"):
        Entry("ns", "k", {}, files={"big": b"x" * layout.MAX_ENTRY_BYTES}).encode()


def test_blobs_are_verified() -> None:
    cas = _cas()
    ref, created = run(lambda: cas.put_blob(b"content"))
    assert created and ref == BlobRef(sha256_of(b"content"), 7)
    assert run(lambda: cas.put_blob(b"content")) == (ref, False)
    assert run(lambda: cas.get_blob(ref)) == b"content"
    assert run(lambda: cas.has_blob(ref.digest))
    # Someone with overwrite rights replaces the bytes: never returned.
    run(lambda: _overwrite(cas, layout.blob_key(ref.digest), b"CONTENT"))
    with pytest.raises(RemoteError, match="do not match its sha256") as caught:
        run(lambda: cas.get_blob(ref))
    assert caught.value.kind == "corrupt"
    run(lambda: _overwrite(cas, layout.blob_key(ref.digest), b"short"))
    with pytest.raises(RemoteError) as caught:
        run(lambda: cas.get_blob(ref))
    assert caught.value.kind in ("corrupt", "garbage")
    with pytest.raises(RemoteError, match="max_blob_size"):
        run(lambda: _cas(max_blob_size=4).put_blob(b"12345"))


async def _overwrite(cas: Cas, key: str, data: bytes) -> None:
    import obstore

    assert isinstance(cas.store, ObstoreStore)
    await obstore.put_async(cas.store._raw, key, data)


def test_get_blob_to_file_deletes_bad_downloads(tmp_path: pytest.TempPathFactory) -> None:
    from pathlib import Path

    cas = _cas()
    ref, _ = run(lambda: cas.put_blob(b"payload" * 100))
    good = Path(str(tmp_path)) / "good"
    run(lambda: cas.get_blob_to(ref, good))
    assert good.read_bytes() == b"payload" * 100
    run(lambda: _overwrite(cas, layout.blob_key(ref.digest), b"Payload" * 100))
    bad = Path(str(tmp_path)) / "bad"
    with pytest.raises(RemoteError, match="sha256"):
        run(lambda: cas.get_blob_to(ref, bad))
    assert not bad.exists()


def test_entries_first_writer_wins_and_marks() -> None:
    cas = _cas()
    ref, _ = run(lambda: cas.put_blob(b"b"))
    first = Entry("ns", "k", {"archive": ref}, meta={"by": "agent 1"})
    assert run(lambda: cas.put_entry(first)) is True
    assert run(lambda: cas.put_entry(Entry("ns", "k", {"archive": ref}, meta={"by": "agent 2"}))) is False
    got = run(lambda: cas.get_entry("ns", "k"))
    assert got is not None and got.meta == {"by": "agent 1"}
    assert run(lambda: cas.get_entry("ns", "missing")) is None
    today = date(2026, 3, 4)
    assert run(lambda: cas.mark_used("ns", "k", today)) is True
    assert run(lambda: cas.mark_used("ns", "k", today)) is False  # one mark per entry and day
    # An entry stored under another entry's key is refused.
    run(lambda: _overwrite(cas, layout.entry_key("ns", "other"), first.encode()))
    with pytest.raises(RemoteError, match="it names ns/k"):
        run(lambda: cas.get_entry("ns", "other"))


def _populate(cas: Cas) -> dict[str, BlobRef]:
    async def go() -> dict[str, BlobRef]:
        refs = {}
        for key in ("a", "b", "c"):
            refs[key], _ = await cas.put_blob(f"blob {key}".encode())
            await cas.put_entry(Entry("uv/w5", key, {"archive": refs[key]}))
        shared, _ = await cas.put_blob(b"shared")
        await cas.put_entry(Entry("uv/w6", "a", {"archive": shared, "extra": refs["a"]}))
        await cas.put_blob(b"orphan")
        await cas.store.put_if_absent("foreign/object", b"not ours")
        return refs

    return run(go)


def test_status_and_verify() -> None:
    cas = _cas()
    _populate(cas)
    status = run(lambda: ops.status(cas))
    assert status.blobs == 5 and status.entries == {"uv/w5": 3, "uv/w6": 1} and status.other_objects == 1
    assert status.objects == 10
    report = run(lambda: ops.verify(cas))
    assert report.ok and report.entries == 4 and report.blobs_referenced == 4 and report.unreferenced_blobs == 1
    assert report.blobs_hashed == 4


def test_verify_reports_every_problem() -> None:
    cas = _cas()
    refs = _populate(cas)
    run(lambda: cas.store.delete(layout.blob_key(refs["b"].digest)))
    run(lambda: _overwrite(cas, layout.blob_key(refs["c"].digest), b"blob C"))
    run(lambda: _overwrite(cas, layout.entry_key("uv/w5", "zz"), b"{garbage"))
    report = run(lambda: ops.verify(cas))
    text = "\n".join(report.problems)
    assert not report.ok and len(report.problems) == 3, text
    assert f"blob {refs['b'].digest} is missing" in text
    assert f"blob {refs['c'].digest}" in text and "sha256" in text
    assert "uv/w5/zz" in text and "unreadable" in text


def test_gc_by_use_and_age() -> None:
    cas = _cas()
    refs = _populate(cas)
    now = datetime.now(UTC) + timedelta(days=40)
    run(lambda: cas.mark_used("uv/w5", "a", now.date() - timedelta(days=2)))
    run(lambda: cas.mark_used("uv/w5", "b", now.date() - timedelta(days=35)))  # used, but too long ago
    report = run(lambda: ops.gc(cas, keep_days=30, grace=timedelta(hours=6), now=now))
    assert report.entries_deleted == ["uv/w5/b", "uv/w5/c", "uv/w6/a"]
    assert report.blobs_deleted == 4 and report.blobs_kept == 1 and report.marks_deleted == 1
    assert report.bytes_freed == len(b"blob b") + len(b"blob c") + len(b"shared") + len(b"orphan")
    assert run(lambda: cas.get_blob(refs["a"])) == b"blob a"
    assert run(lambda: ops.verify(cas)).ok
    status = run(lambda: ops.status(cas))
    assert status.entries == {"uv/w5": 1} and status.used_marks == 1 and status.other_objects == 1


def test_gc_removes_broken_entries_after_the_grace_period() -> None:
    cas = _cas()
    refs = _populate(cas)
    run(lambda: cas.store.delete(layout.blob_key(refs["b"].digest)))
    assert run(lambda: ops.gc(cas, keep_days=30, grace=timedelta(hours=1))).entries_deleted == []
    later = datetime.now(UTC) + timedelta(hours=2)
    report = run(lambda: ops.gc(cas, keep_days=30, grace=timedelta(hours=1), now=later))
    assert report.entries_deleted == ["uv/w5/b"] and report.blobs_deleted == 1  # the orphan


def test_transfers_are_bounded_and_isolated() -> None:
    running = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if i == 3:
            raise RemoteError("item 3 failed", kind="server")
        return i * 10

    out = io.StringIO()
    progress = Progress("pull", total=20, total_bytes=None, stream=out, tty=False, quiet_for=0, log_every=0)
    batch = run(lambda: run_all(list(range(20)), work, concurrency=4, budget=Budget(10, what="pull"), where="w",
                                progress=progress, size_of=lambda _i, r: r))
    assert peak == 4
    assert [o.item for o in batch.failed] == [3]
    assert [o.result for o in batch.succeeded] == [i * 10 for i in range(20) if i != 3]
    assert "pull: 20/20" in out.getvalue() and "1 failed" in out.getvalue()


def test_budget_cancels_what_is_left() -> None:
    async def work(i: int) -> int:
        await asyncio.sleep(0.01 if i < 2 else 30)
        return i

    batch = run(lambda: run_all(list(range(6)), work, concurrency=6, budget=Budget(0.3, what="remote pull"),
                                where="s3://b at h"))
    assert [o.item for o in batch.succeeded] == [0, 1]
    assert {o.error.kind for o in batch.failed if o.error} == {"timeout"}
    assert "remote pull at s3://b at h did not finish within its 0.3 s budget" in str(batch.failed[0].error)
    assert batch.seconds < 5


def test_local_errors_are_not_hidden() -> None:
    async def work(i: int) -> int:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        run(lambda: run_all([1], work, concurrency=1, budget=Budget(5, what="pull"), where="w"))


def test_budget_bound() -> None:
    budget = Budget(0.05, what="remote push")
    with pytest.raises(RemoteError, match=r"0\.05 s budget") as caught:
        run(lambda: budget.bound(asyncio.sleep(5), "s3://b"))
    assert caught.value.kind == "timeout"
    assert run(lambda: Budget(None, what="x").bound(asyncio.sleep(0, result=7), "w")) == 7


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_log_pace_and_quiet_start() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = Progress("remote pull", total=10, total_bytes=5_000_000, stream=out, tty=False, clock=clock)
    clock.now = 0.5
    progress.advance(nbytes=100)
    assert out.getvalue() == ""  # quiet for the first second
    clock.now = 6
    progress.advance(nbytes=1_000_000)
    clock.now = 7
    progress.advance()  # within 5 s of the last line: nothing
    clock.now = 12
    progress.advance()
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("ci-cache: remote pull: 2/10 (1.0 MB of 5.0 MB")


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = Progress("push", total=3, total_bytes=None, stream=out, tty=True, clock=clock)
    for step in (1.5, 1.7, 1.9):
        clock.now = step
        progress.advance(nbytes=10)
    progress.finish()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 4 and text.endswith("\n") and text.count("\n") == 1


def test_fast_work_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress("pull", total=1, total_bytes=None, stream=out, tty=False)
    progress.advance()
    progress.finish()
    assert out.getvalue() == ""
    assert human_bytes(999) == "999 B" and human_bytes(1500) == "1.5 KB" and human_bytes(2e12) == "2000.0 GB"


def test_verify_fix_deletes_broken_entries_then_corrupt_blobs_so_the_content_can_be_published_again() -> None:
    cas = _cas()
    refs = _populate(cas)
    run(lambda: _overwrite(cas, layout.blob_key(refs["c"].digest), b"blob C"))
    run(lambda: cas.store.delete(layout.blob_key(refs["b"].digest)))
    report = run(lambda: ops.verify(cas))
    assert report.bad_blobs == [layout.blob_key(refs["c"].digest)]
    assert report.broken_entries == [layout.entry_key("uv/w5", "b"), layout.entry_key("uv/w5", "c")]
    fixed = run(lambda: ops.fix(cas, report))
    assert fixed.fixed == [*report.broken_entries, *report.bad_blobs]
    assert run(lambda: ops.verify(cas)).ok
    # A push of the same content creates the blob again, whole.
    ref, created = run(lambda: cas.put_blob(b"blob c"))
    assert created and ref == refs["c"]
    assert run(lambda: cas.get_blob(ref)) == b"blob c"


def test_verify_gives_no_verdict_when_the_remote_fails_midway() -> None:
    cas = _cas()
    refs = _populate(cas)

    async def refuse(key: str, path: object, *, max_size: int) -> tuple[int, str]:
        raise RemoteError(f"remote get {key}: unreachable", kind="unreachable")

    cas.store.get_to = refuse  # type: ignore[method-assign]
    with pytest.raises(RemoteError, match="unreachable"):
        run(lambda: ops.verify(cas))
    assert refs


def test_status_counts_entries_by_tool_and_cache_version() -> None:
    cas = _cas()
    _populate(cas)
    assert run(lambda: ops.status(cas)).entries_by_version == {"uv": 4}
