"""The uv side of the fleet tier on synthetic caches, over obstore's in-memory store (logic only):
export, pull and push, what is skipped and why, and how failures degrade."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from obstore.store import MemoryStore

from ci_cache import fsops, keyfiles
from ci_cache.errors import RemoteError
from ci_cache.remote import layout
from ci_cache.remote.budget import Budget, run
from ci_cache.remote.cas import Cas
from ci_cache.remote.layout import BlobRef, Entry
from ci_cache.remote.objectstore import ObjectMeta
from ci_cache.remote.obstore_store import ObstoreStore
from ci_cache.remote.progress import Progress
from ci_cache.remote.reports import PullReport, PushReport
from ci_cache.remote.scrub import Scrubber
from ci_cache.remote.sync import pull, push
from ci_cache.tools.base import Pulled, Wanted
from ci_cache.tools.generic import GenericTool, TempTool
from ci_cache.tools.uv import UvTool, remote_import
from ci_cache.tools.uv import remote_names as names
from ci_cache.tools.uv.layout import linked_archive
from ci_cache.tools.uv.remote import UvPullSession, UvRemote
from ci_cache.tools.uv.remote_export import Exporter
from ci_cache.tools.uv.verify import verify_cache
from tests.unit.uvcache import INDEX, SDISTS, SIMPLE, WHEELS, snapshot, temp_entries, write
from tests.unit.uvremote import BUCKETS, TOKEN, add_build, add_wheel, http_file, sha, wheel_header

ALPHA_WHL = "demo_alpha-1.0.0-py3-none-any.whl"
LINUX = "linux-x86_64"


def memory() -> ObstoreStore:
    return ObstoreStore(MemoryStore(), where="memory://test", scrub=Scrubber(), credentials="none")


def codec(machine: str = LINUX) -> UvRemote:
    return UvRemote({}, machine=machine, buckets=BUCKETS)


def do_push(store: Any, cache: Path, groups: list[str] | None = None, **kw: Any) -> PushReport:
    return run(lambda: push(store, codec(), cache, groups, Budget(30, what="push"), **kw))


def do_pull(store: Any, cache: Path, wanted: Wanted, machine: str = LINUX, **kw: Any) -> PullReport:
    return run(lambda: pull(store, codec(machine), cache, wanted, Budget(30, what="pull"), **kw))


def pins(*items: tuple[str, str, keyfiles.PinKind]) -> Wanted:
    return Wanted(pins=frozenset(keyfiles.Pin(n, h, k) for n, h, k in items))


def agent_a(tmp_path: Path) -> Path:
    cache = tmp_path / "a"
    add_wheel(cache, "demo-alpha", "1.0.0", "AlphaArchive0001", requires=("demo-beta>=1",))
    add_wheel(cache, "demo-beta", "1.0.0", "BetaArchive00001")
    add_wheel(cache, "demo-beta", "1.2.0", "BetaArchive00012")
    add_build(cache, "demo-eta", "1.0.0", "EtaRevision00001", "EtaArchive000001", shard="0123456789abcdef")
    return cache


ETA_SHA = sha("demo-eta-1.0.0.tar.gz")


def test_the_tools_say_whether_they_travel() -> None:
    assert GenericTool("pip", {}).remote({}) is None
    assert TempTool().remote({}) is None
    assert isinstance(UvTool().remote({}), UvRemote)


def test_export_names_entries_by_buckets_package_version_and_hash(tmp_path: Path) -> None:
    cache = agent_a(tmp_path)
    add_wheel(cache, "demo-url", "1.0", "UrlArchive000001", source="wheels-v7/url/9f8e7d6c5b4a3921")
    local = cache / "wheels-v7" / "path" / "abcd" / "demo-local"
    write(local / "1.0-py3-none-any.rev", b"\x92\x91\x00\x95\xb0LocalArchive0001\x90\xa0\x00\xc0")
    plan = Exporter(cache, today="20260102").run(None)
    ids = sorted((i.namespace, i.key) for i in plan.items)
    alpha = sha(ALPHA_WHL)
    assert ("uv-wheels-v7-archive-v0/demo-alpha/1.0.0", f"{alpha}.{TOKEN}") in ids
    assert ("uv-wheels-v7-archive-v0/demo-url/1.0", f"{sha('demo_url-1.0-py3-none-any.whl')}.url-9f8e7d6c5b4a3921") \
        in ids
    assert ("uv-sdists-v10-archive-v0/demo-eta/1.0.0",
            names.build_key(ETA_SHA, TOKEN, "0123456789abcdef", "demo_eta-1.0.0-py3-none-any.whl")) in ids
    assert ("uv-simple-v27/demo-alpha", f"{TOKEN}.20260102") in ids
    assert len(ids) == 7  # alpha, beta x2, eta, url wheel; listings of alpha and beta (none here for eta or url)
    assert plan.roots == ["uv-sdists-v10-archive-v0", "uv-simple-v27", "uv-wheels-v7-archive-v0"]
    assert plan.skipped == ["wheels-v7/path/abcd/demo-local/1.0-py3-none-any: a local file's wheel: its pointer is "
                            "only valid beside that file"]
    built = next(i for i in plan.items if i.namespace.endswith("demo-alpha/1.0.0")).build()
    assert built.meta["archive"] == "AlphaArchive0001" and built.meta["group"] == "1.0.0-py3-none-any"
    assert set(built.files) == {"pointer", "msgpack"} and set(built.blobs) == {"archive"}

    only = Exporter(cache, today="20260102").run([f"{WHEELS}/demo-alpha/1.0.0-py3-none-any", f"{SDISTS}/gone/1.0"])
    assert [(i.namespace, i.key) for i in only.items] == [
        ("uv-wheels-v7-archive-v0/demo-alpha/1.0.0", f"{alpha}.{TOKEN}"),
        ("uv-simple-v27/demo-alpha", f"{TOKEN}.20260102")]
    assert only.skipped == [f"{SDISTS}/gone/1.0: not in the cache"]


@pytest.mark.parametrize(("damage", "reason"), [
    ("link", "its link names another archive than its pointer"),
    ("archive", "its archive is missing"),
    ("pointer", "unreadable pointer"),
    ("nohash", "no sha256 in its pointer"),
])
def test_export_skips_groups_that_do_not_hold_together(tmp_path: Path, damage: str, reason: str) -> None:
    cache = tmp_path / "a"
    folder = add_wheel(cache, "demo-alpha", "1.0.0", "AlphaArchive0001")
    key = "1.0.0-py3-none-any"
    if damage == "link":
        os.unlink(folder / key)
        os.symlink("../../../../archive-v0/SomeOtherArchive", folder / key)
    elif damage == "archive":
        fsops.rmtree(cache / "archive-v0" / "AlphaArchive0001")
    elif damage == "pointer":
        write(folder / f"{key}.http", b"garbage")
    else:
        header = wheel_header("AlphaArchive0001", "demo-alpha", "1.0.0")
        header[1] = []
        write(folder / f"{key}.http", http_file(header))
    plan = Exporter(cache).run(None)
    assert plan.items == []
    assert len(plan.skipped) == 1 and reason in plan.skipped[0]


def test_push_then_pull_into_an_empty_cache(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    pushed = do_push(store, a)
    assert (pushed.entries, pushed.entries_pushed, pushed.blobs_pushed, pushed.warnings) == (6, 6, 4, [])
    wanted = pins(("demo-alpha", sha(ALPHA_WHL), "wheel"), ("demo-eta", ETA_SHA, "sdist"))
    pulled = do_pull(store, b, wanted)
    assert (pulled.entries_installed, pulled.blobs, pulled.missing, pulled.warnings) == (2, 2, [], [])
    assert pulled.bytes == sum(r.size for r in _blob_refs(store).values() if r.digest in _digests_of(store, b))
    # Archives arrive whole and identical; group files byte for byte; the link made for this platform.
    for archive in ("AlphaArchive0001", "EtaArchive000001"):
        assert snapshot(b / "archive-v0" / archive) == snapshot(a / "archive-v0" / archive)
    group = f"{WHEELS}/demo-alpha/1.0.0-py3-none-any"
    for suffix in (".http", ".msgpack"):
        assert (b / f"{group}{suffix}").read_bytes() == (a / f"{group}{suffix}").read_bytes()
    assert os.readlink(b / group) == os.readlink(a / group)
    assert linked_archive(b / group) == "AlphaArchive0001"
    version = b / SDISTS / "demo-eta" / "1.0.0"
    assert (version / "revision.http").read_bytes() == (a / SDISTS / "demo-eta/1.0.0/revision.http").read_bytes()
    shard = version / "EtaRevision00001" / "0123456789abcdef"
    assert linked_archive(shard / "demo_eta-1.0.0-py3-none-any") == "EtaArchive000001"
    assert (shard / "metadata.msgpack").exists()
    assert not (version / "EtaRevision00001" / "src").exists()  # only what uv installs from travels
    assert verify_cache(b).ok and temp_entries(b) == []
    assert not [p for p in b.iterdir() if p.name.startswith(".tmp")]
    # Everything there: no request at all the second time.
    again = do_pull(store, b, wanted)
    assert (again.lookups, again.entries_read, again.entries_installed) == (0, 0, 0)
    # The entries read were marked used today.
    marks = run(lambda: store.list(layout.USED))
    assert {layout.parse_used_key(m.key)[0] for m in marks} == {date.today()}  # type: ignore[index]


def _blob_refs(store: ObstoreStore) -> dict[str, BlobRef]:
    return {layout.parse_blob_key(m.key) or "": BlobRef(layout.parse_blob_key(m.key) or "", m.size)
            for m in run(lambda: store.list(layout.BLOBS))}


def _digests_of(store: ObstoreStore, cache: Path) -> set[str]:
    """The digests of the blobs whose archives `cache` holds."""
    cas = Cas(store)
    out = set()
    for meta in run(lambda: store.list(layout.ENTRIES)):
        entry_id = layout.parse_entry_key(meta.key)
        assert entry_id is not None
        entry = run(lambda i=entry_id: cas.get_entry(*i))  # type: ignore[misc]
        assert entry is not None
        if "archive" in entry.blobs and (cache / "archive-v0" / entry.meta["archive"]).is_dir():
            out.add(entry.blobs["archive"].digest)
    return out


def test_pushing_again_finds_everything_there(tmp_path: Path) -> None:
    a, store = agent_a(tmp_path), memory()
    do_push(store, a)
    again = do_push(store, a)
    assert (again.entries_pushed, again.entries_present, again.blobs_pushed, again.bytes) == (0, 6, 0, 0)


def test_many_entries_are_checked_with_one_list_per_root(tmp_path: Path) -> None:
    cache, store = tmp_path / "a", memory()
    for i in range(40):
        add_wheel(cache, f"pkg-{i:02d}", "1.0", f"Archive{i:09d}")
    first = do_push(store, cache)
    assert (first.entries, first.entries_pushed, first.warnings) == (80, 80, [])
    counting = CountingStore(store)
    second = run(lambda: push(counting, codec(), cache, None, Budget(30, what="push")))
    assert second.entries_present == 80
    assert counting.calls["list"] == 2 and counting.calls["head"] == 0  # wheels and listings roots


def test_what_the_cache_has_stays(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    add_wheel(b, "demo-beta", "1.2.0", "LocalBeta0000012")  # B's own copy of the same wheel
    before = snapshot(b)
    pulled = do_pull(store, b, Wanted(unpinned=frozenset({"demo-alpha"})))
    assert pulled.entries_installed == 1  # alpha; beta (its dependency) was there, under B's own archive
    after = snapshot(b)
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_dangling_local_pointer_is_mended(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    add_wheel(b, "demo-alpha", "1.0.0", "AlphaArchive0001")
    fsops.rmtree(b / "archive-v0" / "AlphaArchive0001")
    assert not verify_cache(b).ok
    pulled = do_pull(store, b, pins(("demo-alpha", sha(ALPHA_WHL), "wheel")))
    assert pulled.entries_installed == 1 and verify_cache(b).ok


def test_a_name_alone_pulls_the_newest_version_and_its_dependencies(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    wanted = Wanted(unpinned=frozenset({"demo-alpha"}), resolved=frozenset({"demo-alpha"}))
    pulled = do_pull(store, b, wanted)
    assert (pulled.entries_installed, pulled.missing) == (4, []), pulled
    assert (b / WHEELS / "demo-beta" / "1.2.0-py3-none-any.http").exists()
    assert not (b / WHEELS / "demo-beta" / "1.0.0-py3-none-any.http").exists()
    for name in ("demo-alpha", "demo-beta"):
        listing = b / SIMPLE / f"{name}.rkyv"
        assert listing.read_bytes() == (a / SIMPLE / f"{name}.rkyv").read_bytes()
        assert listing.stat().st_mtime_ns == (a / SIMPLE / f"{name}.rkyv").stat().st_mtime_ns


def test_a_newer_local_listing_wins(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    write(b / SIMPLE / "demo-alpha.rkyv", "fresher listing")
    pulled = do_pull(store, b, Wanted(resolved=frozenset({"demo-alpha", "demo-beta"})))
    assert (b / SIMPLE / "demo-alpha.rkyv").read_text() == "fresher listing"
    assert pulled.entries_installed == 1  # only beta's listing was missing: alpha's was never looked up
    assert pulled.lookups == 1


def test_wheels_for_another_platform_stay_on_the_remote(tmp_path: Path) -> None:
    a, store = tmp_path / "a", memory()
    add_wheel(a, "demo-native", "1.0", "WinArchive000001", platform="win_amd64", windows_link=True)
    do_push(store, a)
    wanted = pins(("demo-native", sha("demo_native-1.0-py3-none-win_amd64.whl"), "wheel"))
    linux = do_pull(store, tmp_path / "linux", wanted)
    assert linux.entries_installed == 0 and "for another platform (win_amd64)" in linux.entries_skipped[0]
    assert linux.missing == ["demo-native: no entry on the remote"]


def test_on_windows_the_link_is_uvs_text_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    monkeypatch.setattr(remote_import, "WINDOWS_LINKS", True)
    pulled = do_pull(store, b, pins(("demo-alpha", sha(ALPHA_WHL), "wheel")), machine="win-amd64")
    assert pulled.entries_installed == 1
    link = b / WHEELS / "demo-alpha" / "1.0.0-py3-none-any"
    assert not link.is_symlink() and link.read_text() == "archive-v0/AlphaArchive0001"
    assert linked_archive(link) == "AlphaArchive0001"


@pytest.mark.parametrize("machine", ["win-amd64", "linux-x86_64", "linux-aarch64", "macosx-11.0-arm64", "win32"])
def test_platform_fits(machine: str) -> None:
    fits = {tag for tag in ("any", "win_amd64", "win32", "manylinux_2_17_x86_64.manylinux2014_x86_64",
                            "musllinux_1_1_aarch64", "macosx_11_0_arm64", "macosx_10_9_universal2")
            if names.platform_fits(tag, machine)}
    expected = {"win-amd64": {"any", "win_amd64"}, "win32": {"any", "win32"},
                "linux-x86_64": {"any", "manylinux_2_17_x86_64.manylinux2014_x86_64"},
                "linux-aarch64": {"any", "musllinux_1_1_aarch64"},
                "macosx-11.0-arm64": {"any", "macosx_11_0_arm64", "macosx_10_9_universal2"}}
    assert fits == expected[machine]


def test_version_order() -> None:
    versions = ["1.0", "1.0.post1", "1.0rc1", "1.0a1", "1.0.dev0", "0.9", "1.10", "1!0.1", "1.2.0", "1.2"]
    assert sorted(versions, key=names.version_key) == [
        "0.9", "1.0.dev0", "1.0a1", "1.0rc1", "1.0", "1.0.post1", "1.2.0", "1.2", "1.10", "1!0.1"]


def test_a_corrupted_blob_installs_nothing_of_its_package(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    cas = Cas(store)
    (entry_meta,) = run(lambda: store.list(f"{layout.ENTRIES}uv-wheels-v7-archive-v0/demo-alpha/"))
    entry_id = layout.parse_entry_key(entry_meta.key)
    assert entry_id is not None
    entry = run(lambda: cas.get_entry(*entry_id))
    assert entry is not None
    ref = entry.blobs["archive"]
    run(lambda: store._raw.put_async(layout.blob_key(ref.digest), b"x" * ref.size))
    pulled = do_pull(store, b, pins(("demo-alpha", sha(ALPHA_WHL), "wheel"), ("demo-eta", ETA_SHA, "sdist")))
    assert pulled.entries_installed == 1  # eta
    assert len(pulled.warnings) == 1 and "do not match its sha256" in pulled.warnings[0]
    assert not (b / WHEELS / "demo-alpha").exists() and not (b / "archive-v0" / "AlphaArchive0001").exists()
    assert verify_cache(b).ok and not [p for p in b.rglob("*") if p.name.startswith(".tmp")]


def test_an_archive_that_will_not_unpack_installs_nothing(tmp_path: Path) -> None:
    """A blob with the right hash but hostile content (a publisher's bug or a poisoned upload)."""
    b, store = tmp_path / "b", memory()
    cas = Cas(store)
    header = wheel_header("AlphaArchive0001", "demo-alpha", "1.0.0")
    data = b"not a tar stream at all"
    ref, _ = run(lambda: cas.put_blob(data))
    meta = {"kind": "wheel", "path": WHEELS + "/demo-alpha", "group": "1.0.0-py3-none-any",
            "pointer": "1.0.0-py3-none-any.http", "archive": "AlphaArchive0001", "filename": ALPHA_WHL,
            "sha256": sha(ALPHA_WHL)}
    run(lambda: cas.put_entry(Entry("uv-wheels-v7-archive-v0/demo-alpha/1.0.0", f"{sha(ALPHA_WHL)}.{TOKEN}",
                                    {"archive": ref}, files={"pointer": http_file(header)}, meta=meta)))
    pulled = do_pull(store, b, pins(("demo-alpha", sha(ALPHA_WHL), "wheel")))
    assert pulled.entries_installed == 0
    assert any("unreadable archive" in s for s in pulled.entries_skipped), pulled.entries_skipped
    assert not (b / WHEELS / "demo-alpha").exists() and verify_cache(b).ok
    assert not list((b / "archive-v0").iterdir())


@pytest.mark.parametrize(("change", "problem"), [
    ({"path": "wheels-v7/../../../etc"}, "is not inside wheels-v7"),
    ({"path": "/abs/wheels-v7"}, "is not inside wheels-v7"),
    ({"archive": "../escape"}, "is not an archive id"),
    ({"sha256": "0" * 64}, "does not match its metadata"),
    ({"kind": "mystery"}, "unknown kind"),
])
def test_entries_that_do_not_hold_together_are_refused(tmp_path: Path, change: dict[str, str], problem: str) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    plan = Exporter(a).run([f"{WHEELS}/demo-alpha/1.0.0-py3-none-any"])
    built = plan.items[0].build()
    entry = Entry(plan.items[0].namespace, plan.items[0].key, {"archive": BlobRef("0" * 64, 1)},
                  files=dict(built.files), meta={**built.meta, **change})
    session = UvPullSession(b, Wanted(), BUCKETS, machine=LINUX)
    verdict = session.accept(entry)
    assert verdict is not None and problem in verdict
    del store


def test_no_uv_means_no_pull_with_a_note(tmp_path: Path) -> None:
    session = UvPullSession(tmp_path, pins(("x", "0" * 64, "wheel")), None)
    assert session.lookups() == [] and "uv was not found" in session.notes()[0]
    report = run(lambda: pull(memory(), UvRemote({"PATH": str(tmp_path)}), tmp_path / "cache",
                              pins(("x", "0" * 64, "wheel")), Budget(5, what="pull")))
    assert report.lookups == 0 and "uv was not found" in report.warnings[0]


class CountingStore:
    """An ObjectStore that counts calls, and can fail every call of some kinds with a RemoteError."""

    def __init__(self, inner: ObstoreStore, fail: Mapping[str, str] | None = None) -> None:
        self.inner = inner
        self.fail = dict(fail or {})
        self.calls: dict[str, int] = {"get": 0, "list": 0, "head": 0, "put": 0}

    @property
    def where(self) -> str:
        return self.inner.where

    def _call(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if op in self.fail:
            raise RemoteError(f"remote {op} at {self.where}: {self.fail[op]}", kind=self.fail[op])

    async def get(self, key: str, *, max_size: int) -> bytes:
        self._call("get")
        return await self.inner.get(key, max_size=max_size)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        self._call("get")
        return await self.inner.get_range(key, start, end)

    async def get_to(self, key: str, path: Path, *, max_size: int) -> tuple[int, str]:
        self._call("get")
        return await self.inner.get_to(key, path, max_size=max_size)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        self._call("put")
        return await self.inner.put_if_absent(key, data)

    async def head(self, key: str) -> ObjectMeta | None:
        self._call("head")
        return await self.inner.head(key)

    async def list(self, prefix: str) -> list[ObjectMeta]:
        self._call("list")
        return await self.inner.list(prefix)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)


def test_an_unreachable_remote_is_one_warning_and_the_job_goes_on(tmp_path: Path) -> None:
    a, store = agent_a(tmp_path), memory()
    do_push(store, a)
    dead = CountingStore(store, fail={"list": "unreachable", "get": "unreachable", "head": "unreachable",
                                      "put": "unreachable"})
    wanted = pins(("demo-alpha", sha(ALPHA_WHL), "wheel"), ("demo-eta", ETA_SHA, "sdist"))
    report = run(lambda: pull(dead, codec(), tmp_path / "b", wanted, Budget(5, what="pull")))
    assert report.entries_installed == 0 and len(report.warnings) == 1
    assert "unreachable" in report.warnings[0] and "(and 1 more like it)" in report.warnings[0]
    assert report.missing == ["demo-alpha: no entry on the remote", "demo-eta: no entry on the remote"]
    pushed = run(lambda: push(dead, codec(), a, None, Budget(5, what="push")))
    assert pushed.entries_pushed == 0 and len(pushed.warnings) == 1
    with pytest.raises(RemoteError, match="unreachable"):
        run(lambda: pull(dead, codec(), tmp_path / "b", wanted, Budget(5, what="pull"), strict=True))


def test_read_only_credentials_pull_and_never_write(tmp_path: Path) -> None:
    a, b, store = agent_a(tmp_path), tmp_path / "b", memory()
    do_push(store, a)
    read_only = CountingStore(store, fail={"put": "forbidden"})
    wanted = pins(("demo-alpha", sha(ALPHA_WHL), "wheel"))
    pulled = run(lambda: pull(read_only, codec(), b, wanted, Budget(5, what="pull")))
    assert pulled.entries_installed == 1 and pulled.warnings == []  # a refused used mark is no warning
    add_wheel(b, "demo-new", "1.0", "NewArchive000001")
    pushed = run(lambda: push(read_only, codec(), b, [f"{WHEELS}/demo-new/1.0-py3-none-any"], Budget(5, what="push")))
    assert pushed.entries_pushed == 0 and "forbidden" in pushed.warnings[0]
    assert run(lambda: store.head(layout.entry_key("uv-wheels-v7-archive-v0/demo-new/1.0",
                                                   f"{sha('demo_new-1.0-py3-none-any.whl')}.{TOKEN}"))) is None


def test_a_spent_budget_stops_the_pull(tmp_path: Path) -> None:
    a, store = agent_a(tmp_path), memory()
    do_push(store, a)
    clock = iter([0.0] + [100.0] * 1000)
    budget = Budget(1, what="pull", clock=lambda: next(clock))
    report = run(lambda: pull(store, codec(), tmp_path / "b", pins(("demo-alpha", sha(ALPHA_WHL), "wheel")), budget))
    assert report.entries_installed == 0 and "did not finish within its 1 s budget" in report.warnings[0]


def test_progress_is_offered_the_bytes_to_move(tmp_path: Path) -> None:
    import io

    a, store = agent_a(tmp_path), memory()
    do_push(store, a)
    made: list[Progress] = []

    def factory(label: str, total: int, total_bytes: int | None) -> Progress:
        made.append(Progress(label, total=total, total_bytes=total_bytes, stream=io.StringIO(), tty=False,
                             quiet_for=0, log_every=0))
        return made[-1]

    do_pull(store, tmp_path / "b", pins(("demo-alpha", sha(ALPHA_WHL), "wheel")), progress=factory)
    assert [(p.label, p.total, p.done) for p in made] == [("pulling", 1, 1)]
    assert made[0].bytes == made[0].total_bytes


def test_builds_from_two_agents_share_one_revision(tmp_path: Path) -> None:
    a, a2, b, store = tmp_path / "a", tmp_path / "a2", tmp_path / "b", memory()
    add_build(a, "demo-eta", "1.0.0", "EtaRevisionOfA01", "EtaArchiveOfA001")
    add_build(a2, "demo-eta", "1.0.0", "EtaRevisionOfA02", "EtaArchiveOfA002", shard="fedcba9876543210")
    do_push(store, a)
    do_push(store, a2)
    pulled = do_pull(store, b, pins(("demo-eta", ETA_SHA, "sdist")))
    assert pulled.entries_installed == 2
    version = b / SDISTS / "demo-eta" / "1.0.0"
    revisions = [p.name for p in version.iterdir() if p.is_dir()]
    assert len(revisions) == 1
    rev = version / revisions[0]
    assert linked_archive(rev / "demo_eta-1.0.0-py3-none-any") == "EtaArchiveOfA001"
    assert linked_archive(rev / "fedcba9876543210" / "demo_eta-1.0.0-py3-none-any") == "EtaArchiveOfA002"
    assert verify_cache(b).ok


def test_index_hash_is_part_of_where_uv_looks(tmp_path: Path) -> None:
    """The same wheel from another index is another entry: uv keys its cache by the index URL."""
    a, store = tmp_path / "a", memory()
    add_wheel(a, "demo-alpha", "1.0.0", "AlphaArchive0001")
    add_wheel(a, "demo-alpha", "1.0.0", "AlphaArchive0002", source=f"wheels-v7/index/{'1' * 16}")
    fsops.rmtree(a / "archive-v0" / "AlphaArchive0002")  # the same wheel unpacks to the same files
    shutil.copytree(a / "archive-v0" / "AlphaArchive0001", a / "archive-v0" / "AlphaArchive0002")
    pushed = do_push(store, a)
    assert pushed.entries_pushed == 3 and pushed.blobs_pushed == 1  # same wheel, same archive content
    assert INDEX != "1" * 16


def test_groups_of_long_tagged_wheels_are_named_by_a_hash() -> None:
    wheel = names.parse_wheel("sqlalchemy-2.1.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert wheel is not None
    assert names.is_group_of("2.1.9-516d0c2242d49034", wheel)
    assert names.is_group_of("2.1.9-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", wheel)
    assert not names.is_group_of("2.1.8-516d0c2242d49034", wheel)
    assert not names.is_group_of("2.1.9-py3-none-any", wheel)


def test_a_hashed_group_exports_and_imports(tmp_path: Path) -> None:
    a, b, store = tmp_path / "a", tmp_path / "b", memory()
    folder = add_wheel(a, "demo-native", "2.0", "NativeArchive001", platform="manylinux_2_17_x86_64")
    for name in os.listdir(folder):  # uv's name for a group whose tags are long
        os.rename(folder / name, folder / name.replace("2.0-py3-none-manylinux_2_17_x86_64", "2.0-516d0c2242d49034"))
    assert do_push(store, a).entries_pushed == 2
    native = sha("demo_native-2.0-py3-none-manylinux_2_17_x86_64.whl")
    pulled = do_pull(store, b, pins(("demo-native", native, "wheel")))
    assert pulled.entries_installed == 1
    assert linked_archive(b / WHEELS / "demo-native" / "2.0-516d0c2242d49034") == "NativeArchive001"


def test_the_by_name_closure_leaves_extras_out(tmp_path: Path) -> None:
    a, b, store = tmp_path / "a", tmp_path / "b", memory()
    add_wheel(a, "demo-alpha", "1.0.0", "AlphaArchive0001", requires=("demo-beta", "demo-test ; extra == 'test'"))
    add_wheel(a, "demo-beta", "1.0.0", "BetaArchive00001", requires=("demo-win ; sys_platform == 'win32'",))
    add_wheel(a, "demo-test", "1.0.0", "TestArchive00001")
    do_push(store, a)
    pulled = do_pull(store, b, Wanted(unpinned=frozenset({"demo-alpha"})))
    assert pulled.entries_installed == 2 and not (b / WHEELS / "demo-test").exists()
    assert pulled.missing == []  # demo-win (another platform's dependency) is not the job's own request


def test_archives_are_unpacked_while_blobs_download_then_moved_in_whole(tmp_path: Path) -> None:
    from ci_cache.remote import archive

    a = agent_a(tmp_path)
    blob = tmp_path / "staging" / "blob"
    blob.parent.mkdir()
    blob.write_bytes(archive.pack_bytes(a / "archive-v0" / "AlphaArchive0001")[0])
    prepared = remote_import.unpack_beside(blob)
    assert prepared is not None and prepared.folder.is_dir() and prepared.packed.files > 0
    plan = Exporter(a).run([f"{WHEELS}/demo-alpha/1.0.0-py3-none-any"])
    built = plan.items[0].build()
    entry = Entry(plan.items[0].namespace, plan.items[0].key, {"archive": BlobRef("0" * 64, 1)},
                  files=dict(built.files), meta=dict(built.meta))
    b = tmp_path / "b"
    inode = os.stat(prepared.folder).st_ino
    stats = remote_import.Installer(b, BUCKETS, prepared={blob: prepared}).run([Pulled(entry, {"archive": blob})])
    assert stats.entries == 1 and stats.files == prepared.packed.files + 2  # and the .msgpack and .http
    assert os.stat(b / "archive-v0" / "AlphaArchive0001").st_ino == inode  # moved, not unpacked again
    assert snapshot(b / "archive-v0" / "AlphaArchive0001") == snapshot(a / "archive-v0" / "AlphaArchive0001")
    assert verify_cache(b).ok and not prepared.folder.exists()
    # A blob that does not unpack is left to the install, which says why.
    bad = tmp_path / "staging" / "bad"
    bad.write_bytes(b"not an archive")
    assert remote_import.unpack_beside(bad) is None and not (tmp_path / "staging" / "bad.unpacked").exists()
