"""ci_cache.tools.uv.warm: a warm job cache refreshed in place becomes exactly what a fresh seed makes.

Every test seeds a job cache, lets a "job" do something to it, refreshes it (`SeedRequest.warm`), and
compares it with a fresh seed of the same shared cache made beside it: the same entries with the same
content and modes, archives hardlinked to the shared files, copies of their own, the same manifest. The
shared cache is byte-identical before and after.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ci_cache import fsops, osapi
from ci_cache.tools.base import SeedRequest, SeedStats
from ci_cache.tools.uv import UvTool, interpreter_store
from ci_cache.tools.uv.manifest import Manifest
from ci_cache.tools.uv.warm import same_links
from tests.unit.uvcache import (
    ALPHA,
    BETA,
    DELTA,
    GAMMA,
    OLD,
    SIMPLE,
    WHEELS,
    ZETA,
    Caches,
    Pkg,
    archive_files,
    make_archive,
    make_shared,
    make_wheel_group,
    same_file,
    snapshot,
    write,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")

NEW = Pkg("demo-new", "3.0.0", "NewArchiveId0001", ("demo-alpha",))


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Link archives and delete the trash in Python: unit tests start no process."""
    monkeypatch.setattr(osapi, "start_bulk_link", lambda sources, target: None)
    monkeypatch.setattr(osapi, "start_background_delete", lambda path, env=None: False)


@pytest.fixture
def caches(tmp_path: Path) -> Caches:
    shared = make_shared(tmp_path / "root" / "shared" / "uv")
    job_dir = tmp_path / "root" / "jobs" / "jabc"
    return Caches(shared=shared, job=job_dir / "uv", manifest=job_dir / "uv.manifest.json")


def refresh(caches: Caches, packages: frozenset[str] | None = None) -> SeedStats:
    return UvTool().seed(SeedRequest(shared=caches.shared, job=caches.job, link=True, packages=packages,
                                     manifest=caches.manifest, warm=True))


def fresh(caches: Caches, packages: frozenset[str] | None = None) -> Caches:
    """A fresh seed of the same shared cache, beside the job's."""
    other = caches.job.parent.parent / "jfresh"
    made = Caches(shared=caches.shared, job=other / "uv", manifest=other / "uv.manifest.json")
    made.seed(packages)
    return made


def assert_as_fresh(caches: Caches, packages: frozenset[str] | None = None) -> None:
    """The refreshed job cache is what a fresh seed makes: entries, content, modes, links to the shared
    archives, copies of its own of the metadata; and its manifest names the same files and archives."""
    made = fresh(caches, packages)
    assert snapshot(caches.job) == snapshot(made.job)
    refreshed, expected = Manifest.load(caches.manifest), Manifest.load(made.manifest)
    assert refreshed.archives == expected.archives
    assert set(refreshed.files) == set(expected.files)
    for archive in refreshed.archives:
        for rel in archive_files(caches.job, archive):
            assert same_file(caches.job / "archive-v0" / archive / rel, caches.shared / "archive-v0" / archive / rel)
    for rel in refreshed.files:
        if rel.startswith("interpreter-"):
            continue  # the store's queries are linked (uv replaces a query, never writes into it)
        assert os.lstat(caches.job / rel).st_nlink == 1, rel
        assert not same_file(caches.job / rel, caches.shared / rel) if (caches.shared / rel).exists() else True


def test_an_untouched_warm_cache_is_kept_whole(caches: Caches) -> None:
    first = caches.seed()
    before = snapshot(caches.shared)
    stats = refresh(caches)
    assert stats.warm and stats.bytes == 0
    assert (stats.files, stats.linked, stats.copied) == (first.files, first.linked, first.copied)
    assert stats.kept == stats.files
    assert snapshot(caches.shared) == before
    assert_as_fresh(caches)


def test_whatever_the_job_did_the_refresh_makes_a_fresh_seed(caches: Caches) -> None:
    queries = interpreter_store(caches.shared) / "interpreter-v5" / "0123456789abcdef"
    write(queries / "kept.msgpack", "a query the job left alone")
    write(queries / "requeried.msgpack", "a query the job's uv wrote anew")
    caches.seed()
    before = snapshot(caches.shared)
    store_before = snapshot(interpreter_store(caches.shared))
    job = caches.job
    # uv re-queried an interpreter: a new file renamed over its link to the store's.
    requeried = job / "interpreter-v5" / "0123456789abcdef" / "requeried.msgpack"
    write(requeried.with_suffix(".tmp"), "a query the job's uv wrote anew")
    os.replace(requeried.with_suffix(".tmp"), requeried)
    # uv revalidated an index page (in place, new mtime) and the job did not merge it.
    with open(job / SIMPLE / f"{ALPHA.name}.rkyv", "r+b") as fh:
        fh.write(b"revalidated")
    # A pointer rewritten with its old size and mtime kept, but made a hardlink of the shared file.
    os.unlink(job / WHEELS / BETA.name / f"{BETA.key}.msgpack")
    msgpack = f"{BETA.key}.msgpack"
    os.link(caches.shared / WHEELS / BETA.name / msgpack, job / WHEELS / BETA.name / msgpack)
    # A copy made read-only, a link pointed elsewhere, a copy replaced by a dir, a dir replaced by a link.
    os.chmod(job / WHEELS / GAMMA.name / f"{GAMMA.key}.http", 0o444)
    os.unlink(job / WHEELS / DELTA.name / DELTA.key)
    os.symlink("../../../../archive-v0/somewhere-else", job / WHEELS / DELTA.name / DELTA.key)
    os.unlink(job / WHEELS / ZETA.name / f"{ZETA.key}.msgpack")
    write(job / WHEELS / ZETA.name / f"{ZETA.key}.msgpack" / "inside", "a dir where a file was")
    os.rename(job / SIMPLE, job / "moved-index")
    os.symlink(job / "moved-index", job / SIMPLE)
    outside = caches.job.parent.parent / "outside"  # a link in the middle of a path seeding walks
    os.rename(job / WHEELS, outside)
    os.symlink(outside, job / WHEELS)
    # In archives: a file replaced (not written through the link), one added, one deleted, one archive gone.
    core = job / "archive-v0" / ALPHA.archive / "demo_alpha" / "core.py"
    os.unlink(core)
    write(core, "replaced by the job")
    write(job / "archive-v0" / BETA.archive / "added.py", "added by the job")
    os.unlink(job / "archive-v0" / GAMMA.archive / "demo_gamma" / "__init__.py")
    for rel in archive_files(job, DELTA.archive):
        os.unlink(job / "archive-v0" / DELTA.archive / rel)
    # What uv and a job leave that a seed never makes.
    make_wheel_group(job, NEW)  # installed, never merged
    write(job / ".tmpHalf" / "x.py", "partial")
    write(job / "builds-v0" / ".tmpB" / "setup.py", "")
    write(job / "environments-v2" / "env" / "x", "")
    write(job / ".lock", "")
    write(job / WHEELS / ALPHA.name / "extra.lock", "")
    outside_before = snapshot(outside)
    stats = refresh(caches)
    assert stats.warm and 0 < stats.kept < stats.files and stats.bytes > 0
    assert snapshot(caches.shared) == before
    assert snapshot(outside) == outside_before  # never written through the link
    assert snapshot(interpreter_store(caches.shared)) == store_before
    assert_as_fresh(caches)
    for name in ("kept.msgpack", "requeried.msgpack"):
        assert same_file(job / "interpreter-v5" / "0123456789abcdef" / name, queries / name)
    assert not (job / "archive-v0" / NEW.archive).exists()


def test_what_the_job_merged_back_stays_and_new_shared_entries_come_in(caches: Caches) -> None:
    caches.seed()
    make_wheel_group(caches.job, NEW)
    write(caches.job / SIMPLE / f"{ALPHA.name}.rkyv", "fresher page", mtime_ns=OLD + 10**12)
    caches.merge()
    # Meanwhile another job merged a package this cache never had.
    make_wheel_group(caches.shared, Pkg("demo-other", "1.0.0", "OtherArchive0001"))
    stats = refresh(caches)
    assert (caches.job / "archive-v0" / NEW.archive).is_dir()
    assert (caches.job / "archive-v0" / "OtherArchive0001").is_dir()
    assert stats.kept >= len(archive_files(caches.job, NEW.archive))
    assert (caches.job / SIMPLE / f"{ALPHA.name}.rkyv").read_text() == "fresher page"
    assert_as_fresh(caches)


def test_what_the_shared_cache_dropped_leaves_the_warm_cache(caches: Caches) -> None:
    caches.seed()
    # A prune evicted beta (pointers first, then its archive) and an index page went.
    for name in os.listdir(caches.shared / WHEELS / BETA.name):
        os.unlink(caches.shared / WHEELS / BETA.name / name)
    os.rmdir(caches.shared / WHEELS / BETA.name)
    for rel in archive_files(caches.shared, BETA.archive):
        os.unlink(caches.shared / "archive-v0" / BETA.archive / rel)
    os.unlink(caches.shared / SIMPLE / f"{GAMMA.name}.rkyv")
    refresh(caches)
    assert not (caches.job / "archive-v0" / BETA.archive).exists()
    assert not (caches.job / WHEELS / BETA.name).exists()
    assert_as_fresh(caches)


def test_a_key_file_refresh_takes_the_scope_it_is_asked_for(caches: Caches) -> None:
    caches.seed()  # a full cache...
    refresh(caches, frozenset({"demo-beta"}))  # ...refreshed for a job that needs beta (and delta)
    assert (caches.job / "archive-v0" / BETA.archive).is_dir()
    assert (caches.job / "archive-v0" / DELTA.archive).is_dir()
    assert not (caches.job / "archive-v0" / ALPHA.archive).exists()
    assert_as_fresh(caches, frozenset({"demo-beta"}))


def test_a_warm_cache_of_a_missing_shared_cache_is_emptied(caches: Caches, tmp_path: Path) -> None:
    caches.seed()
    gone = Caches(shared=tmp_path / "nowhere", job=caches.job, manifest=caches.manifest)
    stats = refresh(gone)
    assert stats.files == 0 and os.listdir(caches.job) == []
    assert Manifest.load(caches.manifest).files == {}


def test_same_links_is_true_only_for_a_tree_of_the_very_same_files(tmp_path: Path) -> None:
    src = make_archive(tmp_path / "a", "SomeArchive00001", "pkg", "1.0")
    os.symlink("pkg/core.py", src / "alias")
    dst = tmp_path / "b"
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if os.path.islink(Path(dirpath, name)):
                os.symlink(os.readlink(Path(dirpath, name)), dst / rel / name)
            else:
                os.link(Path(dirpath, name), dst / rel / name)
    assert same_links(src, dst) == len(archive_files(tmp_path / "a", "SomeArchive00001")) - 1  # not the link
    copy = dst / "pkg" / "core.py"
    data = copy.read_bytes()
    os.unlink(copy)
    copy.write_bytes(data)  # the same bytes, but a file of its own
    assert same_links(src, dst) is None


def test_on_windows_the_listing_s_size_and_mtime_stand_for_the_file_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Windows listing carries no file id: asking for one opens every file, which a scanner makes slow."""
    monkeypatch.setattr(osapi, "IS_WINDOWS", True)
    src = make_archive(tmp_path / "a", "SomeArchive00001", "pkg", "1.0")
    dst = tmp_path / "b"
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(dirpath, name), dst / rel / name)
    assert same_links(src, dst) == len(archive_files(tmp_path / "a", "SomeArchive00001"))
    copy = dst / "pkg" / "core.py"
    before = os.stat(copy)
    os.unlink(copy)
    copy.write_bytes(b"x" * before.st_size)  # replaced by a file of its own: a new mtime
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert same_links(src, dst) is None


def test_what_the_refresh_sweeps_away_waits_in_the_job_dir_for_its_delete(
    caches: Caches, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No process starts for it (on Windows that costs a warm seed most of its time): the job dir, which
    finish deletes, takes it."""
    caches.seed()
    write(caches.job / "builds-v0" / "tmp" / "left.py", "what the job's uv left")

    def no_process(path: Path, env: object = None) -> bool:
        raise AssertionError(f"a process was started to delete {path}")

    monkeypatch.setattr(osapi, "start_background_delete", no_process)
    refresh(caches)
    assert not (caches.job / "builds-v0").exists()
    (trash,) = [p for p in caches.job.parent.iterdir() if p.name.startswith(fsops.TEMP_PREFIX)]
    assert (trash / "1" / "tmp" / "left.py").is_file()
    assert_as_fresh(caches)
