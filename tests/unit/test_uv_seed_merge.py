"""ci_cache.tools.uv: seeding a job's cache and merging it back, on synthetic uv-shaped caches (uvcache)."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from ci_cache import fsops, osapi
from ci_cache.errors import LockTimeout
from ci_cache.tools.base import SeedRequest
from ci_cache.tools.uv import UvTool, interpreter_store
from ci_cache.tools.uv import layout as uvlayout
from ci_cache.tools.uv import merge as uvmerge
from ci_cache.tools.uv.layout import archive_id_of_link
from tests.unit.uvcache import (
    ALPHA,
    BETA,
    DELTA,
    ENV_ONLY,
    ETA_ARCHIVE,
    ETA_REV,
    ETA_VERSION,
    GAMMA,
    OLD,
    SDISTS,
    SIMPLE,
    URL_ARCHIVE,
    WHEELS,
    ZETA,
    Caches,
    Pkg,
    archive_files,
    make_archive,
    make_shared,
    make_wheel_group,
    mkparent,
    same_file,
    snapshot,
    temp_entries,
    write,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")


@pytest.fixture
def caches(tmp_path: Path) -> Caches:
    shared = make_shared(tmp_path / "root" / "shared" / "uv")
    job_dir = tmp_path / "root" / "jobs" / "jabc"
    return Caches(shared=shared, job=job_dir / "uv", manifest=job_dir / "uv.manifest.json")


# ---------------------------------------------------------------------------------------------------
# Seeding everything.


@pytest.fixture(autouse=True)
def link_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests link archives in Python; the `cp -al` path has its own test, which spawns."""
    monkeypatch.setattr(osapi, "start_bulk_link", lambda sources, target: None)


@pytest.mark.spawns
@pytest.mark.skipif(sys.platform == "win32", reason="cp -al is the POSIX fast path")
def test_seed_with_cp_links_the_same_files(caches: Caches, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    stats = caches.seed()
    for pkg in (ALPHA, BETA, GAMMA, DELTA, ZETA):
        for rel in archive_files(caches.shared, pkg.archive):
            assert same_file(caches.shared / "archive-v0" / pkg.archive / rel,
                             caches.job / "archive-v0" / pkg.archive / rel)
    assert stats.entries == 7
    assert stats.linked == sum(len(archive_files(caches.shared, p)) for p in
                               (ALPHA.archive, BETA.archive, GAMMA.archive, DELTA.archive, ZETA.archive,
                                ETA_ARCHIVE, URL_ARCHIVE))


def test_seed_links_archives_and_copies_metadata(caches: Caches) -> None:
    stats = caches.seed()
    shared, job = caches.shared, caches.job
    for pkg in (ALPHA, BETA, GAMMA, DELTA, ZETA):
        for rel in archive_files(shared, pkg.archive):
            assert same_file(shared / "archive-v0" / pkg.archive / rel, job / "archive-v0" / pkg.archive / rel)
        for suffix in (".http", ".msgpack"):
            s, j = shared / WHEELS / pkg.name / (pkg.key + suffix), job / WHEELS / pkg.name / (pkg.key + suffix)
            assert j.read_bytes() == s.read_bytes()
            assert not same_file(s, j), f"{j} is linked: uv could rewrite it in place"
        link = job / WHEELS / pkg.name / pkg.key
        assert os.readlink(link) == f"../../../../archive-v0/{pkg.archive}"
        assert link.resolve() == (job / "archive-v0" / pkg.archive).resolve()
        index = job / SIMPLE / f"{pkg.name}.rkyv"
        assert index.read_bytes() == (shared / SIMPLE / f"{pkg.name}.rkyv").read_bytes()
        assert not same_file(index, shared / SIMPLE / f"{pkg.name}.rkyv")
    # The sdist: pointer and metadata copied, the revision's link retargets into the job's cache.
    version_dir = job / SDISTS / "demo-eta" / ETA_VERSION
    assert not same_file(version_dir / "revision.http", shared / SDISTS / "demo-eta" / ETA_VERSION / "revision.http")
    assert (version_dir / ETA_REV / f"demo_eta-{ETA_VERSION}-py3-none-any").resolve() == (
        job / "archive-v0" / ETA_ARCHIVE).resolve()
    assert archive_files(job, ETA_ARCHIVE) == archive_files(shared, ETA_ARCHIVE)
    assert archive_files(job, URL_ARCHIVE) == archive_files(shared, URL_ARCHIVE)
    assert stats.scope == "full"
    assert stats.entries == 7  # 5 wheels + the sdist's + the URL wheel's archive
    assert stats.linked > 0 and stats.copied > 0
    assert stats.files == stats.linked + stats.copied
    assert caches.manifest.is_file()


def test_seed_leaves_out_what_must_never_travel(caches: Caches) -> None:
    caches.seed()
    job = caches.job
    for absent in ("builds-v0", "environments-v2", "interpreter-v5", ".tmpXYZ123", "archive-v0/.tmpQ9zLLc",
                   f"archive-v0/{ENV_ONLY}", ".lock", "CACHEDIR.TAG", ".gitignore"):
        assert not os.path.lexists(job / absent), absent
    locks = [rel for rel in snapshot(job) if rel.endswith(".lock")]
    assert locks == []


def test_seed_copy_mode_links_nothing(caches: Caches) -> None:
    stats = caches.seed(link=False)
    assert stats.linked == 0
    rel = archive_files(caches.shared, ALPHA.archive)[0]
    assert not same_file(caches.shared / "archive-v0" / ALPHA.archive / rel,
                         caches.job / "archive-v0" / ALPHA.archive / rel)


def test_seed_from_a_missing_shared_cache_gives_an_empty_job_cache(tmp_path: Path) -> None:
    c = Caches(shared=tmp_path / "nothing", job=tmp_path / "job" / "uv", manifest=tmp_path / "job" / "m.json")
    stats = c.seed()
    assert c.job.is_dir() and os.listdir(c.job) == []
    assert stats.files == 0 and c.manifest.is_file()


def test_seed_rewrites_absolute_links_to_the_job_cache(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    make_wheel_group(shared, ALPHA, absolute=True)
    c = Caches(shared=shared, job=tmp_path / "job" / "uv", manifest=tmp_path / "job" / "m.json")
    c.seed()
    link = c.job / WHEELS / ALPHA.name / ALPHA.key
    assert link.resolve() == (c.job / "archive-v0" / ALPHA.archive).resolve()


def test_seed_follows_windows_style_text_links(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    make_wheel_group(shared, ALPHA, windows_link=True)
    c = Caches(shared=shared, job=tmp_path / "job" / "uv", manifest=tmp_path / "job" / "m.json")
    c.seed()
    assert archive_files(c.job, ALPHA.archive) == archive_files(shared, ALPHA.archive)
    assert (c.job / WHEELS / ALPHA.name / ALPHA.key).read_text() == f"archive-v0\\{ALPHA.archive}"


def test_seed_waits_for_uv_cache_clean_then_gives_up(caches: Caches, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_cache import osapi

    monkeypatch.setattr(uvlayout, "UV_LOCK_TIMEOUT", 0.2)
    clean = osapi.try_lock(caches.shared / ".lock")  # `uv cache clean` holds it exclusive
    assert clean is not None
    try:
        with pytest.raises(LockTimeout):
            caches.seed()
    finally:
        clean.release()


# ---------------------------------------------------------------------------------------------------
# Seeding what the key files name.


def test_key_file_seeding_takes_the_named_packages_and_their_requires_dist_closure(caches: Caches) -> None:
    stats = caches.seed(frozenset({"demo-alpha"}))
    job = caches.job
    # alpha -> beta (Requires-Dist) -> delta; gamma is required under an extra (taken: markers are not
    # evaluated); zeta is not required by anyone.
    for pkg in (ALPHA, BETA, DELTA, GAMMA):
        assert (job / WHEELS / pkg.name / f"{pkg.key}.http").is_file(), pkg.name
        assert archive_files(job, pkg.archive) == archive_files(caches.shared, pkg.archive)
        assert (job / SIMPLE / f"{pkg.name}.rkyv").is_file()
    assert not (job / WHEELS / ZETA.name).exists()
    assert not (job / "archive-v0" / ZETA.archive).exists()
    assert not (job / SIMPLE / f"{ZETA.name}.rkyv").exists()
    assert not (job / SDISTS / "demo-eta").exists()
    assert not (job / "archive-v0" / ETA_ARCHIVE).exists()
    # The body of METADATA is not headers.
    assert not (job / WHEELS / "not-a-dep").exists()
    # Entries not keyed by a name (direct URLs) come along: they could be any of the job's packages.
    assert archive_files(job, URL_ARCHIVE) == archive_files(caches.shared, URL_ARCHIVE)
    assert stats.scope == "key files"


def test_key_file_seeding_of_an_sdist_package(caches: Caches) -> None:
    caches.seed(frozenset({"demo-eta"}))
    job = caches.job
    assert (job / SDISTS / "demo-eta" / ETA_VERSION / "revision.http").is_file()
    assert archive_files(job, ETA_ARCHIVE) == archive_files(caches.shared, ETA_ARCHIVE)
    assert not (job / WHEELS / ALPHA.name).exists()


def test_key_file_seeding_of_an_unknown_name_seeds_no_package(caches: Caches) -> None:
    caches.seed(frozenset({"not-in-the-cache"}))
    for pkg in (ALPHA, BETA, GAMMA, DELTA, ZETA):
        assert not (caches.job / "archive-v0" / pkg.archive).exists()


# ---------------------------------------------------------------------------------------------------
# Nothing a job does reaches the shared cache.


def test_a_job_that_rewrites_and_deletes_everything_leaves_the_shared_cache_byte_identical(caches: Caches) -> None:
    before = snapshot(caches.shared)
    caches.seed()
    job = caches.job
    # What uv does to metadata: rewrite in place (same inode), and replace links.
    for rel, (kind, _content) in snapshot(job).items():
        path = job / rel
        if kind == "file" and not rel.startswith("archive-v0/"):
            with open(path, "r+b") as fh:
                fh.write(b"rewritten in place by the job")
        elif kind == "link":
            os.unlink(path)
            os.symlink("../../../../archive-v0/somewhere-else", path)
    # What `uv cache prune`/`clean` does: delete archives, then everything.
    for archive in os.listdir(job / "archive-v0"):
        for rel, _entry in list(fsops.walk_files(job / "archive-v0" / archive)):
            os.unlink(job / "archive-v0" / archive / rel)
    fsops.rmtree(job)
    assert snapshot(caches.shared) == before


# ---------------------------------------------------------------------------------------------------
# Merging.


def add_new_package(job: Path, pkg: Pkg, *, absolute: bool = False, windows_link: bool = False) -> None:
    """What a uv install of a package the shared cache lacks leaves in the job's cache."""
    make_wheel_group(job, pkg, absolute=absolute, windows_link=windows_link)


NEW = Pkg("demo-new", "3.0.0", "NewArchiveId0001", ("demo-alpha",))


def test_merge_adds_a_new_group_with_its_archive(caches: Caches) -> None:
    caches.seed()
    add_new_package(caches.job, NEW)
    stats = caches.merge()
    shared = caches.shared
    assert archive_files(shared, NEW.archive) == archive_files(caches.job, NEW.archive)
    for rel in archive_files(shared, NEW.archive):
        assert (shared / "archive-v0" / NEW.archive / rel).read_bytes() == (
            caches.job / "archive-v0" / NEW.archive / rel).read_bytes()
    folder = shared / WHEELS / NEW.name
    assert (folder / f"{NEW.key}.http").is_file() and (folder / f"{NEW.key}.msgpack").is_file()
    assert (folder / NEW.key).resolve() == (shared / "archive-v0" / NEW.archive).resolve()
    assert not (folder / f"{NEW.key}.lock").exists()
    assert (shared / SIMPLE / f"{NEW.name}.rkyv").is_file()
    assert stats.entries >= 1
    assert any(NEW.name in d for d in stats.details)
    assert temp_entries(shared) == []


def test_merge_of_an_unchanged_job_changes_nothing(caches: Caches) -> None:
    before = snapshot(caches.shared)
    caches.seed()
    stats = caches.merge()
    assert snapshot(caches.shared) == before
    assert stats.entries == 0


def test_merge_keeps_the_target_group_on_conflict(caches: Caches) -> None:
    caches.seed()
    # The job re-downloaded alpha into a new archive and rewrote its pointer.
    job_folder = caches.job / WHEELS / ALPHA.name
    make_archive(caches.job, "JobOwnArchive001", ALPHA.name, ALPHA.version)
    os.unlink(job_folder / ALPHA.key)
    os.symlink("../../../../archive-v0/JobOwnArchive001", job_folder / ALPHA.key)
    write(job_folder / f"{ALPHA.key}.http", "the job's pointer")
    before = snapshot(caches.shared)
    stats = caches.merge()
    assert snapshot(caches.shared) == before
    assert stats.kept_existing >= 1
    assert not (caches.shared / "archive-v0" / "JobOwnArchive001").exists()


def test_merge_replaces_a_dangling_target_group(caches: Caches) -> None:
    caches.seed()
    fsops.rmtree(caches.shared / "archive-v0" / ALPHA.archive)  # e.g. a prune took the archive
    # The job fetched alpha again.
    job_folder = caches.job / WHEELS / ALPHA.name
    make_archive(caches.job, "RefetchedAlpha01", ALPHA.name, ALPHA.version, ALPHA.requires)
    os.unlink(job_folder / ALPHA.key)
    os.symlink("../../../../archive-v0/RefetchedAlpha01", job_folder / ALPHA.key)
    write(job_folder / f"{ALPHA.key}.http", "refetched pointer")
    caches.merge()
    shared_folder = caches.shared / WHEELS / ALPHA.name
    assert (shared_folder / ALPHA.key).resolve() == (caches.shared / "archive-v0" / "RefetchedAlpha01").resolve()
    assert (shared_folder / f"{ALPHA.key}.http").read_text() == "refetched pointer"
    assert archive_files(caches.shared, "RefetchedAlpha01") == archive_files(caches.job, "RefetchedAlpha01")


def test_merge_index_files_the_newer_wins(caches: Caches) -> None:
    caches.seed()
    newer = caches.job / SIMPLE / f"{ALPHA.name}.rkyv"
    write(newer, "fresher index page", mtime_ns=OLD + 10**12)
    older = caches.job / SIMPLE / f"{BETA.name}.rkyv"
    write(older, "staler index page", mtime_ns=OLD - 10**12)
    caches.merge()
    assert (caches.shared / SIMPLE / f"{ALPHA.name}.rkyv").read_text() == "fresher index page"
    assert (caches.shared / SIMPLE / f"{BETA.name}.rkyv").read_text() == f"rkyv index page of {BETA.name}"


def test_merge_never_takes_temp_dirs_builds_environments_interpreters_or_locks(caches: Caches) -> None:
    caches.seed()
    job = caches.job
    add_new_package(job, NEW)
    write(job / ".tmpAbCdEf" / "x.py", "partial")
    write(job / "archive-v0" / ".tmpZZZ" / "x.py", "partial")
    write(job / WHEELS / NEW.name / ".tmpYYY", "partial")
    write(job / "builds-v0" / ".tmpB2" / "setup.py", "")
    make_archive(job, "JobVenvArchive01", "venv", "0")
    os.symlink(job / "archive-v0" / "JobVenvArchive01", mkparent(job / "environments-v2" / "job-env-1234"))
    write(job / "interpreter-v5" / "0123456789abcdef" / "fedcba9876543210.msgpack", "job interpreter")
    write(job / ".lock", "")
    write(job / SIMPLE / "demo-new.lock", "")
    write(job / "CACHEDIR.TAG", "job tag")
    # A new sdist build, with its lock files.
    rev = job / SDISTS / "demo-theta" / "1.1.0" / "NewRevision00001"
    write(rev.parent / "revision.http", "pointer")
    write(rev.parent / ".lock", "")
    write(rev / "metadata.msgpack", "m")
    write(rev / "1.1.0-py3-none-any.lock", "")
    write(rev / ".tmpBuild" / "half.py", "")
    make_archive(job, "ThetaBuiltArchiv", "demo-theta", "1.1.0")
    os.symlink("../../../../../../archive-v0/ThetaBuiltArchiv", rev / "demo_theta-1.1.0-py3-none-any")

    locks_before = {rel for rel in snapshot(caches.shared) if rel.endswith(".lock")}
    caches.merge()
    shared = caches.shared
    after = snapshot(shared)
    assert not (shared / "archive-v0" / "JobVenvArchive01").exists()
    assert not (shared / "environments-v2" / "job-env-1234").exists()
    assert not (shared / "interpreter-v5" / "0123456789abcdef").exists()
    # Interpreter queries are kept beside the shared cache, never in it.
    kept = interpreter_store(shared) / "interpreter-v5" / "0123456789abcdef" / "fedcba9876543210.msgpack"
    assert kept.read_text() == "job interpreter"
    assert (shared / "CACHEDIR.TAG").read_text().startswith("Signature:")
    assert not (shared / ".tmpAbCdEf").exists() and not (shared / "archive-v0" / ".tmpZZZ").exists()
    assert not (shared / WHEELS / NEW.name / ".tmpYYY").exists()
    new_locks = [rel for rel in after if rel.endswith(".lock") and rel not in locks_before]
    new_temps = [rel for rel in after if any(p.startswith(".tmp") for p in rel.split("/"))
                 and not rel.startswith((".tmpXYZ123", "archive-v0/.tmpQ9zLLc", "builds-v0"))]
    assert new_locks + new_temps == []
    # The sdist itself did merge, whole.
    assert (shared / SDISTS / "demo-theta" / "1.1.0" / "revision.http").is_file()
    assert (shared / SDISTS / "demo-theta" / "1.1.0" / "NewRevision00001" / "metadata.msgpack").is_file()
    assert archive_files(shared, "ThetaBuiltArchiv") == archive_files(job, "ThetaBuiltArchiv")


def test_merge_rewrites_absolute_links_to_the_shared_cache(caches: Caches) -> None:
    caches.seed()
    add_new_package(caches.job, NEW, absolute=True)  # uv < 0.11.17 wrote absolute links
    caches.merge()
    link = caches.shared / WHEELS / NEW.name / NEW.key
    assert os.readlink(link).startswith(str(caches.shared))
    assert link.resolve() == (caches.shared / "archive-v0" / NEW.archive).resolve()


def test_merge_of_a_windows_style_group(caches: Caches) -> None:
    caches.seed()
    add_new_package(caches.job, NEW, windows_link=True)
    caches.merge()
    folder = caches.shared / WHEELS / NEW.name
    assert (folder / NEW.key).read_text() == f"archive-v0\\{NEW.archive}"
    assert archive_files(caches.shared, NEW.archive) == archive_files(caches.job, NEW.archive)


def test_merge_skips_a_group_whose_archive_the_job_lost(caches: Caches) -> None:
    caches.seed()
    add_new_package(caches.job, NEW)
    fsops.rmtree(caches.job / "archive-v0" / NEW.archive)  # a prune in the job
    stats = caches.merge()
    assert not (caches.shared / WHEELS / NEW.name / f"{NEW.key}.http").exists()  # no dangling pointer
    assert not (caches.shared / "archive-v0" / NEW.archive).exists()
    assert stats.skipped >= 1


def test_merge_is_idempotent(caches: Caches) -> None:
    caches.seed()
    add_new_package(caches.job, NEW)
    caches.merge()
    once = snapshot(caches.shared)
    second = caches.merge()
    assert snapshot(caches.shared) == once
    assert second.entries == 0
    assert second.kept_existing >= 1


def test_merge_without_a_manifest_still_only_adds(caches: Caches, tmp_path: Path) -> None:
    # A job that was never seeded (seed: none): everything in it looks new.
    job = tmp_path / "cold" / "uv"
    make_wheel_group(job, NEW)
    make_wheel_group(job, ALPHA, http=b"the cold job's alpha pointer")
    c = Caches(shared=caches.shared, job=job, manifest=tmp_path / "cold" / "missing.json")
    c.merge()
    assert (caches.shared / WHEELS / NEW.name / f"{NEW.key}.http").is_file()
    assert (caches.shared / WHEELS / ALPHA.name / f"{ALPHA.key}.http").read_text() == (
        f"http-cache-policy {ALPHA.archive}")


# ---------------------------------------------------------------------------------------------------
# An interrupted merge leaves no partial archive and no dangling pointer.


def assert_shared_consistent(shared: Path) -> None:
    """Every pointer's link names an archive that is there and complete; no staging dirs remain."""
    for rel, (kind, _content) in snapshot(shared).items():
        if kind == "link" and rel.startswith(("wheels-", "sdists-")):
            path = shared / rel
            archive = archive_id_of_link(str(path), is_symlink=True)
            assert archive is not None and (shared / "archive-v0" / archive).is_dir(), f"dangling {rel}"
            # Complete: every archive here was made by make_archive, which writes a RECORD last-but-one.
            assert any((shared / "archive-v0" / archive).glob("*.dist-info/RECORD")), f"partial {archive}"
    assert temp_entries(shared) == []


@pytest.mark.parametrize("where", ["clone_tree", "rename_new", "_try_link"])
def test_a_merge_interrupted_by_a_full_disk_leaves_the_shared_cache_valid(
    caches: Caches, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    caches.seed()
    add_new_package(caches.job, NEW)
    before = snapshot(caches.shared)
    real = getattr(fsops, where)
    calls = {"n": 0}

    def full_disk(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] >= 3 or where != "_try_link":
            # Midway: a clone makes a part of its tree before the disk fills up.
            if where == "clone_tree":
                dst = Path(str(args[1]))
                dst.mkdir()
                write(dst / "partial.py", "half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(fsops, where, full_disk)
    with pytest.raises(OSError, match="No space left"):
        caches.merge()
    monkeypatch.undo()
    shared = caches.shared
    assert not (shared / "archive-v0" / NEW.archive).exists()  # no partial archive
    assert not (shared / WHEELS / NEW.name / f"{NEW.key}.http").exists()  # no pointer to it
    assert not os.path.lexists(shared / WHEELS / NEW.name / NEW.key)
    assert_shared_consistent(shared)
    # Nothing that was there before changed.
    after = snapshot(shared)
    assert {k: v for k, v in after.items() if k in before} == before
    # And the next merge completes it.
    caches.merge()
    assert (shared / WHEELS / NEW.name / NEW.key).resolve() == (shared / "archive-v0" / NEW.archive).resolve()
    assert_shared_consistent(shared)


def test_interpreter_queries_reach_the_next_job_and_stay_bounded(caches: Caches,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvmerge, "MAX_INTERPRETERS", 3)
    caches.seed()
    for i in range(5):
        entry = caches.job / "interpreter-v5" / f"{i:016x}" / "info.msgpack"
        write(entry, f"interpreter {i}")
        os.utime(entry, (1_000_000 + i, 1_000_000 + i))
    caches.merge()
    store = interpreter_store(caches.shared) / "interpreter-v5"
    assert sorted(p.parent.name for p in store.rglob("*.msgpack")) == [f"{i:016x}" for i in (2, 3, 4)]
    assert not (caches.shared / "interpreter-v5" / f"{4:016x}").exists()
    fresh = caches.job.parent / "next-job"
    UvTool().seed(SeedRequest(shared=caches.shared, job=fresh, link=True, packages=None,
                              manifest=caches.job.parent / "next.manifest.json"))
    assert (fresh / "interpreter-v5" / f"{4:016x}" / "info.msgpack").read_text() == "interpreter 4"


def test_interpreter_queries_are_linked_and_a_requery_never_reaches_the_store(caches: Caches) -> None:
    """uv rewrites a query by renaming a new file over it (measured with uv 0.13.8), so a link is safe,
    and it costs a directory entry instead of a file."""
    kept = interpreter_store(caches.shared) / "interpreter-v5" / "0123456789abcdef" / "base.msgpack"
    write(kept, "base interpreter")
    stats = UvTool().seed(SeedRequest(shared=caches.shared, job=caches.job, link=True, packages=None,
                                      manifest=caches.manifest))
    seeded = caches.job / "interpreter-v5" / "0123456789abcdef" / "base.msgpack"
    assert os.path.samefile(seeded, kept) and stats.linked >= 1
    fresh = seeded.with_name("requery.tmp")
    write(fresh, "re-queried")
    os.replace(fresh, seeded)  # what uv does
    assert kept.read_text() == "base interpreter"
    caches.merge()
    assert kept.read_text() == "re-queried"  # the job's newer query is kept, as a copy of its own
    assert not os.path.samefile(seeded, kept)
