"""ci_cache.tools.uv's prune and verify, through the CacheTool protocol, on synthetic uv caches (uvcache).

uv itself is kept off PATH here: `uv cache prune` has its own integration test (test_prune_doctor).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ci_cache import fsops, osapi
from ci_cache.errors import LockTimeout
from ci_cache.tools.base import PruneReport, PruneRequest
from ci_cache.tools.uv import UvTool
from tests.unit.uvcache import (
    ALPHA,
    BETA,
    DELTA,
    ENV_ONLY,
    ETA_ARCHIVE,
    ETA_VERSION,
    GAMMA,
    SDISTS,
    URL_ARCHIVE,
    WHEELS,
    ZETA,
    make_archive,
    make_sdist_build,
    make_shared,
    msgpack_str,
    snapshot,
    write,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")

NOW = 2_000_000_000.0
DAY = 86400.0
# Oldest first: the order LRU eviction takes them in.
BY_AGE = [ALPHA.archive, ETA_ARCHIVE, BETA.archive, GAMMA.archive, DELTA.archive, ZETA.archive, URL_ARCHIVE,
          ENV_ONLY]


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    cache = make_shared(tmp_path / "root" / "shared" / "uv")
    for days, archive in enumerate(BY_AGE):
        used = NOW - (len(BY_AGE) - days) * DAY
        os.utime(cache / "archive-v0" / archive, (used, used))
    return cache


def prune(cache: Path, *, max_size: int | None = None, max_age: float | None = None,
          lock_timeout: float = 5.0) -> PruneReport:
    return UvTool().prune(PruneRequest(cache=cache, max_size=max_size, max_age=max_age, ci=False,
                                       env={"PATH": ""}, lock_timeout=lock_timeout, now=NOW))


def archives(cache: Path) -> list[str]:
    return sorted(n for n in os.listdir(cache / "archive-v0") if not fsops.is_temp_name(n))


# ---------------------------------------------------------------------------------------------------
# prune


def test_prune_evicts_the_least_recently_used_entry_whole(shared: Path) -> None:
    _, size = fsops.tree_size(shared)
    report = prune(shared, max_size=size - 1)
    assert report.tool == "uv" and report.evicted_entries == 1
    assert report.bytes_before == size and report.bytes_after < size
    assert report.uv_prune == "skipped: uv not found"
    assert ALPHA.archive not in archives(shared)
    assert sorted(os.listdir(shared / WHEELS / ALPHA.name)) == [f"{ALPHA.key}.lock"]  # the whole group went
    assert BETA.archive in archives(shared) and (shared / WHEELS / BETA.name / f"{BETA.key}.http").is_file()
    assert UvTool().verify(shared).ok
    assert [p for p in snapshot(shared) if p.split("/")[-1].startswith(fsops.TEMP_PREFIX)] == []


def test_prune_takes_an_sdist_version_folder_with_the_archive_it_built(shared: Path) -> None:
    _, size = fsops.tree_size(shared)
    alpha = fsops.tree_size(shared / "archive-v0" / ALPHA.archive)[1]
    report = prune(shared, max_size=size - alpha - 1000)  # more than alpha's entry: the sdist's goes too
    assert report.evicted_entries == 2
    assert ETA_ARCHIVE not in archives(shared)
    assert not (shared / SDISTS / "demo-eta" / ETA_VERSION).exists()
    assert UvTool().verify(shared).ok


def test_prune_follows_windows_text_links_in_sdist_revisions(tmp_path: Path) -> None:
    cache = tmp_path / "uv"
    version_dir = make_sdist_build(cache, "demo-win", "2.0.0", "WinRevision00001", "WinBuiltArchive1",
                                   windows_link=True)
    report = prune(cache, max_age=DAY)  # the archive was made now, so by NOW it is years old
    assert report.evicted_entries == 1
    assert archives(cache) == []
    assert not version_dir.exists()


def test_prune_by_age_keeps_what_was_used_lately(shared: Path) -> None:
    report = prune(shared, max_age=3.5 * DAY)
    assert report.evicted_entries == len(BY_AGE) - 3
    assert archives(shared) == sorted(BY_AGE[-3:])
    assert not (shared / WHEELS / DELTA.name / f"{DELTA.key}.http").exists()
    assert (shared / WHEELS / ZETA.name / f"{ZETA.key}.http").is_file()


def test_prune_deletes_the_pointer_before_the_archive(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    unlink, remove_whole = fsops.unlink, fsops.remove_whole

    def record_unlink(path: Path, *, missing_ok: bool = True) -> None:
        order.append(path.name)
        unlink(path, missing_ok=missing_ok)

    def record_remove(path: Path) -> None:
        order.append(path.name)
        remove_whole(path)

    monkeypatch.setattr(fsops, "unlink", record_unlink)
    monkeypatch.setattr(fsops, "remove_whole", record_remove)
    prune(shared, max_size=fsops.tree_size(shared)[1] - 1)
    assert order[0] == f"{ALPHA.key}.http" and order[-1] == ALPHA.archive
    assert sorted(order[1:-1]) == [ALPHA.key, f"{ALPHA.key}.msgpack"]


def test_prune_says_when_what_is_left_cannot_be_evicted(shared: Path) -> None:
    report = prune(shared, max_size=1)
    assert archives(shared) == []
    assert report.bytes_after > 1
    assert report.notes and "raise max_size" in report.notes[0]


def test_prune_of_a_missing_cache_reports_nothing(tmp_path: Path) -> None:
    report = prune(tmp_path / "nothing", max_size=1)
    assert (report.bytes_before, report.evicted_entries, report.uv_prune) == (0, 0, "not run")


def test_prune_waits_for_uv_commands_on_the_cache_then_gives_up(shared: Path) -> None:
    running = osapi.try_lock(shared / ".lock", shared=True)  # a uv command holds the root lock shared
    assert running is not None
    try:
        with pytest.raises(LockTimeout, match="to evict entries"):
            prune(shared, max_size=1, lock_timeout=0.2)
    finally:
        running.release()
    assert sorted(archives(shared)) == sorted(BY_AGE)


# ---------------------------------------------------------------------------------------------------
# verify


def test_verify_of_a_valid_cache(shared: Path) -> None:
    report = UvTool().verify(shared)
    assert report.ok and report.findings == []
    # Five wheel groups, the URL wheel's group and the sdist's revision pointer.
    assert report.checked == {"pointers": 7, "archives": len(BY_AGE)}


def test_verify_finds_a_group_whose_archive_is_gone(shared: Path) -> None:
    fsops.rmtree(shared / "archive-v0" / BETA.archive)
    report = UvTool().verify(shared)
    assert not report.ok
    [error] = report.errors
    folder = shared / WHEELS / BETA.name
    assert error.path == f"{WHEELS}/{BETA.name}/{BETA.key}.http"
    assert BETA.archive in error.problem
    # Fixing it removes the group, its pointer first; never its lock file.
    assert error.fix == [folder / f"{BETA.key}.http", folder / f"{BETA.key}.msgpack", folder / BETA.key]


def test_verify_reads_the_archive_id_of_a_group_without_a_link(shared: Path) -> None:
    folder = shared / WHEELS / "demo-local"
    write(folder / "0.1-py3-none-any.rev", b"\x92" + msgpack_str("LocalArchive0001"))
    assert [e.path for e in UvTool().verify(shared).errors] == [f"{WHEELS}/demo-local/0.1-py3-none-any.rev"]
    make_archive(shared, "LocalArchive0001", "demo-local", "0.1")
    assert UvTool().verify(shared).ok


@pytest.mark.parametrize("windows_link", [False, True])
def test_verify_finds_an_sdist_link_to_a_missing_archive(tmp_path: Path, windows_link: bool) -> None:
    cache = tmp_path / "uv"
    version_dir = make_sdist_build(cache, "demo-b", "1.0", "BuildRevision001", "BuiltArchive0001",
                                   windows_link=windows_link)
    fsops.rmtree(cache / "archive-v0" / "BuiltArchive0001")
    [error] = UvTool().verify(cache).errors
    link = version_dir / "BuildRevision001" / "demo_b-1.0-py3-none-any"
    assert error.problem == "links to missing archive BuiltArchive0001"
    assert error.fix == [link]


def test_verify_finds_a_revision_pointer_to_a_missing_revision(tmp_path: Path) -> None:
    cache = tmp_path / "uv"
    version_dir = make_sdist_build(cache, "demo-r", "1.0", "RealRevision0001", "RevArchive000001",
                                   pointer=b"\x92" + msgpack_str("GoneRevision0001"))
    [error] = UvTool().verify(cache).errors
    assert error.problem == "names revision GoneRevision0001, which does not exist"
    assert error.fix == [version_dir / "revision.http"]
    write(version_dir / "revision.http", b"\x92" + msgpack_str("RealRevision0001"))
    assert UvTool().verify(cache).ok


def test_verify_notes_buckets_of_several_uv_versions(shared: Path) -> None:
    (shared / "wheels-v6").mkdir()
    report = UvTool().verify(shared)
    assert report.ok
    [note] = report.findings
    assert note.kind == "note" and "wheels-v6, wheels-v7" in note.problem and note.fix == []
