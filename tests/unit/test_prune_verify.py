"""ci_cache.prune and ci_cache.verify dispatch through CacheTool; GenericTool's and TempTool's prune and verify."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ci_cache import fsops, gc, osapi, prune, verify
from ci_cache.store import Store
from ci_cache.tools import BUILTINS
from ci_cache.tools.base import (
    CacheTool,
    Finding,
    MergeRequest,
    MergeStats,
    PruneReport,
    PruneRequest,
    RemoteCodec,
    SeedRequest,
    SeedStats,
    VerifyReport,
)
from ci_cache.tools.generic import GenericTool, TempTool

NOW = 2_000_000_000.0
GRACE = 3600.0


@dataclass
class FakeTool:
    """A tool that records what the orchestration asked of it, and whether its writer lock was held."""

    name: str
    store: Store
    has_shared_cache: bool = True
    keeps_warm: bool = False
    commands: tuple[str, ...] = ()
    own_lock: str | None = None
    pruned: list[PruneRequest] = field(default_factory=list)
    lock_held: list[bool] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        return {}

    def seed(self, request: SeedRequest) -> SeedStats:
        return SeedStats()

    def merge(self, request: MergeRequest) -> MergeStats:
        return MergeStats()

    def prune(self, request: PruneRequest) -> PruneReport:
        self.pruned.append(request)
        probe = osapi.try_lock(self.store.write_lock(self.name))
        self.lock_held.append(probe is None)
        if probe is not None:
            probe.release()
        return PruneReport(self.name, evicted_files=3)

    def verify(self, cache: Path) -> VerifyReport:
        return VerifyReport(cache, list(self.findings), checked={"things": 2})

    def remote(self, env: Mapping[str, str]) -> RemoteCodec | None:
        return None


def test_the_tools_implement_the_protocol(store: Store) -> None:
    tools: list[CacheTool] = [factory() for factory in BUILTINS.values()]
    tools += [GenericTool("custom", {"X": "{dir}"}), FakeTool("fake", store)]
    assert {t.name for t in tools} == {"uv", "pip", "temp", "custom", "fake"}


# ---------------------------------------------------------------------------------------------------
# prune_store


def test_prune_store_prunes_each_shared_cache_under_its_writer_lock(store: Store) -> None:
    first, second = FakeTool("one", store), FakeTool("two", store)
    for tool in (first, second):
        store.shared_cache(tool.name).mkdir()
    reports = prune.prune_store(store, [first, second], max_size=100, max_age=60.0, ci=True,
                                env={"PATH": "/nowhere"}, lock_timeout=7.0)
    assert [r.tool for r in reports] == ["one", "two"]
    assert first.lock_held == second.lock_held == [True]
    [request] = first.pruned
    assert request == PruneRequest(cache=store.shared_cache("one"), max_size=100, max_age=60.0, ci=True,
                                   env={"PATH": "/nowhere"}, lock_timeout=7.0)
    # The lock is released afterwards.
    after = osapi.try_lock(store.write_lock("one"))
    assert after is not None
    after.release()


def test_prune_store_skips_tools_without_a_shared_cache_and_missing_caches(store: Store) -> None:
    temp = FakeTool("temp", store, has_shared_cache=False)
    missing = FakeTool("missing", store)
    store.shared_cache("temp").mkdir()
    assert prune.prune_store(store, [temp, missing], max_size=1, max_age=None, ci=False, env={},
                             lock_timeout=1.0) == []
    assert temp.pruned == missing.pruned == []


def test_prune_store_waits_for_a_writer_then_gives_up(store: Store) -> None:
    from ci_cache.errors import LockTimeout

    tool = FakeTool("busy", store)
    store.shared_cache("busy").mkdir()
    writer = osapi.try_lock(store.write_lock("busy"))
    assert writer is not None
    try:
        with pytest.raises(LockTimeout, match="prune the shared busy cache"):
            prune.prune_store(store, [tool], max_size=1, max_age=None, ci=False, env={}, lock_timeout=0.2)
    finally:
        writer.release()
    assert tool.pruned == []


def test_log_report_names_the_tool_and_its_notes(capsys: pytest.CaptureFixture[str]) -> None:
    prune.log_report(PruneReport("pip", bytes_before=2 * 2**20, bytes_after=2**20, evicted_files=4,
                                 notes=["still too big"]))
    err = capsys.readouterr().err
    assert "prune pip: 2.0 MiB -> 1.0 MiB, 0 entries and 4 files evicted; not run" in err
    assert "still too big" in err


# ---------------------------------------------------------------------------------------------------
# GenericTool and TempTool


def aged_file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age, NOW - age))
    return path


def generic_prune(cache: Path, *, max_size: int | None = None, max_age: float | None = None) -> PruneReport:
    return GenericTool("pip", {}).prune(PruneRequest(cache=cache, max_size=max_size, max_age=max_age, ci=False,
                                                     env={}, lock_timeout=1.0, now=NOW))


def test_generic_prune_evicts_least_recently_used_files_down_to_the_size(tmp_path: Path) -> None:
    oldest = aged_file(tmp_path / "http" / "a", 100, age=300)
    middle = aged_file(tmp_path / "http" / "b" / "c", 100, age=200)
    newest = aged_file(tmp_path / "wheels" / "d", 100, age=100)
    report = generic_prune(tmp_path, max_size=150)
    assert (report.tool, report.bytes_before, report.bytes_after, report.evicted_files) == ("pip", 300, 100, 2)
    assert not oldest.exists() and not middle.exists() and newest.exists()


def test_generic_prune_by_age_counts_the_later_of_access_and_modification(tmp_path: Path) -> None:
    old = aged_file(tmp_path / "old", 10, age=1000)
    read_lately = aged_file(tmp_path / "read", 10, age=1000)
    os.utime(read_lately, (NOW - 10, NOW - 1000))
    report = generic_prune(tmp_path, max_age=500)
    assert report.evicted_files == 1
    assert not old.exists() and read_lately.exists()


def test_generic_prune_within_bounds_removes_nothing(tmp_path: Path) -> None:
    kept = aged_file(tmp_path / "f", 10, age=10)
    report = generic_prune(tmp_path, max_size=1000, max_age=1000)
    assert report.evicted_files == 0 and report.bytes_after == 10 and kept.exists()


def test_generic_and_temp_tools_have_nothing_to_verify(tmp_path: Path) -> None:
    aged_file(tmp_path / "f", 10, age=10)
    for tool in (GenericTool("pip", {}), TempTool()):
        report = tool.verify(tmp_path)
        assert report.ok and report.findings == [] and report.checked == {}


def test_the_temp_tool_has_nothing_to_prune(tmp_path: Path) -> None:
    kept = aged_file(tmp_path / "f", 10, age=10**6)
    report = TempTool().prune(PruneRequest(cache=tmp_path, max_size=0, max_age=0, ci=False, env={},
                                           lock_timeout=1.0))
    assert report.evicted_files == 0 and report.notes == ["no shared cache: nothing to prune"]
    assert kept.exists()


# ---------------------------------------------------------------------------------------------------
# verify: the tool's findings, plus leftover temp dirs for every cache


def temp_dir(cache: Path, rel: str, *, age: float) -> Path:
    path = cache / rel
    (path / "sub").mkdir(parents=True)
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_verify_of_a_missing_cache_is_an_error_and_creates_nothing(store: Store) -> None:
    before = sorted(os.listdir(store.shared_dir))
    report = verify.check(FakeTool("x", store), store.shared_cache("x"), now=NOW)
    assert not report.ok
    assert [(f.kind, f.problem) for f in report.findings] == [("error", "no cache here")]
    assert sorted(os.listdir(store.shared_dir)) == before
    uv_report = verify.check(BUILTINS["uv"](), store.shared_cache("uv"), now=NOW)
    assert verify.render(uv_report).splitlines() == [
        f"{store.shared_cache('uv')}: 0 pointers, 0 archives checked",
        f"  error: {store.shared_cache('uv')}: no cache here",
        # --fix cannot make a cache appear: advising it would only loop.
        f"  1 error(s); no cache at {store.shared_cache('uv')}: give the path of a uv cache, or no path for the "
        "shared one",
    ]


def test_verify_adds_leftover_temp_dirs_to_the_tools_findings(store: Store) -> None:
    tool = FakeTool("pip", store, findings=[Finding("error", "a/b", "broken", [Path("a/b")])])
    cache = store.shared_cache("pip")
    store.write_lock("pip").touch()  # a merge ran here once
    ours = temp_dir(cache, f"{fsops.TEMP_PREFIX}1-abc", age=5)
    tools_young = temp_dir(cache, "bucket/.tmpYoung", age=5)
    tools_old = temp_dir(cache, "bucket/.tmpOld", age=GRACE * 2)
    temp_dir(cache, "bucket/deeper/.tmpNotScanned", age=GRACE * 2)
    report = verify.check(tool, cache, grace=GRACE, now=NOW)
    assert report.findings[0] == tool.findings[0]
    garbage = {f.path: f for f in report.findings if f.kind == "garbage"}
    assert set(garbage) == {ours.name, "bucket/.tmpYoung", "bucket/.tmpOld"}
    assert garbage[ours.name].fix == [ours]  # nobody holds the writer lock: no merge is staging it
    assert garbage["bucket/.tmpOld"].fix == [tools_old]
    assert garbage["bucket/.tmpYoung"].fix == []  # a tool process may be writing it right now
    assert garbage["bucket/.tmpYoung"].problem == "leftover temp dir (may be in use; kept)"
    assert not report.ok  # the tool's error; garbage alone is no error
    assert tools_young.exists()


def test_verify_keeps_young_staging_dirs_while_a_writer_holds_the_lock(store: Store) -> None:
    cache = store.shared_cache("pip")
    ours = temp_dir(cache, f"bucket/{fsops.TEMP_PREFIX}2-def", age=5)
    writer = osapi.try_lock(store.write_lock("pip"))
    assert writer is not None
    try:
        report = verify.check(FakeTool("pip", store), cache, grace=GRACE, now=NOW)
    finally:
        writer.release()
    [finding] = report.findings
    assert finding.fix == [] and report.ok
    assert ours.exists()


def test_verify_creates_no_lock_file_and_then_cannot_know_that_nobody_writes(tmp_path: Path) -> None:
    cache = tmp_path / "someones-uv-cache"
    ours = temp_dir(cache, f"{fsops.TEMP_PREFIX}4-bbb", age=5)
    old = temp_dir(cache, ".tmpOld", age=GRACE * 2)
    report = verify.check(GenericTool("pip", {}), cache, grace=GRACE, now=NOW)
    assert {f.path: f.fix for f in report.findings} == {ours.name: [], old.name: [old]}
    assert sorted(os.listdir(tmp_path)) == ["someones-uv-cache"]


def test_leftover_temp_dirs_holds_the_writer_lock_while_the_block_runs(store: Store) -> None:
    cache = store.shared_cache("uv")
    temp_dir(cache, f"{fsops.TEMP_PREFIX}3-aaa", age=5)
    with gc.leftover_temp_dirs(cache, grace=GRACE, now=NOW, own_lock=None) as leftovers:
        assert [(lo.path.name, lo.reclaimable) for lo in leftovers] == [(f"{fsops.TEMP_PREFIX}3-aaa", True)]
        assert osapi.try_lock(store.write_lock("uv")) is None  # a merge would wait until we are done
    after = osapi.try_lock(store.write_lock("uv"))
    assert after is not None
    after.release()


def test_fix_removes_exactly_what_the_findings_list(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    (folder / "sub").mkdir(parents=True)
    single = tmp_path / "file"
    single.write_text("x")
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    os.symlink(target, link)
    keep = tmp_path / "keep"
    keep.write_text("x")
    report = VerifyReport(tmp_path, [Finding("error", "dir", "x", [single, link]),
                                     Finding("garbage", "g", "x", [folder]), Finding("note", "n", "x"),
                                     Finding("error", "gone", "x", [tmp_path / "gone"])])
    assert verify.fix(report) == 3
    assert sorted(os.listdir(tmp_path)) == ["keep", "target"]


def test_render_says_what_was_checked_and_what_to_do(tmp_path: Path) -> None:
    report = VerifyReport(tmp_path, [Finding("error", "w/x.http", "names archive A, which does not exist",
                                             [tmp_path / "w" / "x.http"])], checked={"pointers": 3, "archives": 2})
    assert verify.render(report).splitlines() == [
        f"{tmp_path}: 3 pointers, 2 archives checked",
        "  error: w/x.http: names archive A, which does not exist",
        "  1 error(s); `ci-cache verify --fix` repairs them",
    ]
    # An error that --fix cannot remove is not met with advice to run it (which would loop).
    unfixable = VerifyReport(tmp_path, [Finding("error", "w/y.http", "odd")], checked={"pointers": 1})
    assert verify.render(unfixable).splitlines()[-1] == (
        "  1 error(s); `ci-cache verify --fix` cannot repair these; `uv cache clean` of this cache starts it afresh")
    assert verify.render(VerifyReport(tmp_path)).splitlines() == [f"{tmp_path}: nothing checked", "  OK"]
