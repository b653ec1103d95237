"""ci_cache.gc: dead jobs past the grace period go, young or live ones stay, leftover temp dirs go."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from ci_cache import fsops, gc, jobdirs, lease, osapi, status
from ci_cache.errors import StoreError
from ci_cache.store import Store

GRACE = 3600.0
NOW = 2_000_000_000.0  # a fixed "now": ages below are set relative to it, no clock involved


def age(path: Path, seconds: float) -> None:
    stamp = NOW - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def make_job(store: Store, key: str, *, age_seconds: float, with_lease: bool = True) -> None:
    job_dir = store.job_dir(key)
    (job_dir / "uv" / "archive-v0" / "abc").mkdir(parents=True)
    (job_dir / "uv" / "archive-v0" / "abc" / "mod.py").write_bytes(b"x" * 1000)
    (job_dir / "tmp").mkdir()
    jobdirs.write_record(job_dir, {"job": f"job-{key}", "key": key, "status": "ready"})
    paths = [job_dir, jobdirs.record_of(job_dir)]
    if with_lease:
        store.lease(key).touch()
        paths.append(store.lease(key))
    for path in paths:
        age(path, age_seconds)


def test_a_dead_job_older_than_the_grace_period_is_reclaimed(store: Store) -> None:
    make_job(store, "jdead0000001", age_seconds=GRACE * 2)
    report = gc.collect(store, grace=GRACE, now=NOW)
    assert report.reclaimed_jobs == ["jdead0000001"]
    assert report.bytes_freed >= 1000
    dead = store.job_dir("jdead0000001")
    for path in (dead, jobdirs.record_of(dead), store.lease("jdead0000001")):
        assert not os.path.lexists(path)
    assert store.job_keys() == []


def test_a_dead_job_without_a_lease_file_is_reclaimed(store: Store) -> None:
    make_job(store, "jnolease0001", age_seconds=GRACE * 2, with_lease=False)
    report = gc.collect(store, grace=GRACE, now=NOW)
    assert report.reclaimed_jobs == ["jnolease0001"]
    assert not store.job_dir("jnolease0001").exists()


def test_a_young_dead_job_is_kept(store: Store) -> None:
    make_job(store, "jyoung000001", age_seconds=GRACE / 2)
    report = gc.collect(store, grace=GRACE, now=NOW)
    assert report.reclaimed_jobs == []
    assert store.job_dir("jyoung000001").is_dir()
    assert jobdirs.record_of(store.job_dir("jyoung000001")).is_file()


def test_the_newest_trace_decides_the_age(store: Store) -> None:
    make_job(store, "jmixed000001", age_seconds=GRACE * 2)
    age(jobdirs.record_of(store.job_dir("jmixed000001")), 10)  # the record was just rewritten
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_jobs == []


def test_a_job_whose_lease_is_held_in_this_process_is_live(store: Store) -> None:
    make_job(store, "jlive0000001", age_seconds=GRACE * 100)
    held = osapi.try_lock(store.lease("jlive0000001"))
    assert held is not None
    try:
        report = gc.collect(store, grace=GRACE, now=NOW)
    finally:
        held.release()
    assert report.live_jobs == ["jlive0000001"]
    assert store.job_dir("jlive0000001").is_dir()


@pytest.mark.spawns
def test_a_live_job_held_by_another_process_is_kept_whatever_its_age(store: Store) -> None:
    make_job(store, "jlive0000002", age_seconds=GRACE * 100)
    make_job(store, "jdead0000002", age_seconds=GRACE * 100)
    pid = lease.start_holder(store.lease("jlive0000002"), ttl=600, env=dict(os.environ))
    try:
        age(store.lease("jlive0000002"), GRACE * 100)
        report = gc.collect(store, grace=GRACE, now=NOW)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    assert report.live_jobs == ["jlive0000002"]
    assert report.reclaimed_jobs == ["jdead0000002"]
    assert (store.job_dir("jlive0000002") / "uv" / "archive-v0" / "abc" / "mod.py").is_file()
    assert jobdirs.record_of(store.job_dir("jlive0000002")).is_file() and store.lease("jlive0000002").exists()


def test_gc_never_follows_a_link_out_of_a_job_dir(store: Store, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    make_job(store, "jlinks000001", age_seconds=GRACE * 2)
    os.symlink(outside, store.job_dir("jlinks000001") / "uv" / "escape")
    age(store.job_dir("jlinks000001"), GRACE * 2)
    gc.collect(store, grace=GRACE, now=NOW)
    assert (outside / "keep.txt").read_text() == "keep"


def make_temp(store: Store, rel: str, *, age_seconds: float) -> Path:
    path = store.shared_cache("uv") / rel
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "f.py").write_text("partial")
    age(path, age_seconds)
    return path


def test_leftover_merge_staging_dirs_are_reclaimed_when_no_merge_runs(store: Store) -> None:
    ours_root = make_temp(store, f"{fsops.TEMP_PREFIX}123-abc", age_seconds=5)
    ours_bucket = make_temp(store, f"archive-v0/{fsops.TEMP_PREFIX}456-def", age_seconds=5)
    uv_young = make_temp(store, ".tmpAbC123", age_seconds=5)
    uv_old = make_temp(store, "archive-v0/.tmpOld999", age_seconds=GRACE * 2)
    keep = make_temp(store, "archive-v0/RealArchive00001", age_seconds=GRACE * 2)
    report = gc.collect(store, grace=GRACE, now=NOW)
    assert not ours_root.exists() and not ours_bucket.exists()
    assert not uv_old.exists()
    assert uv_young.exists()  # a uv process may be writing it right now
    assert keep.exists()
    assert sorted(report.reclaimed_temp) == sorted(str(p) for p in (ours_root, ours_bucket, uv_old))


def test_young_staging_dirs_stay_while_a_merge_holds_the_writer_lock(store: Store) -> None:
    ours = make_temp(store, f"archive-v0/{fsops.TEMP_PREFIX}789-aaa", age_seconds=5)
    old = make_temp(store, f"archive-v0/{fsops.TEMP_PREFIX}000-bbb", age_seconds=GRACE * 2)
    writer = osapi.try_lock(store.write_lock("uv"))
    assert writer is not None
    try:
        gc.collect(store, grace=GRACE, now=NOW)
    finally:
        writer.release()
    assert ours.exists()
    assert not old.exists()


def test_gc_of_an_empty_or_missing_root(tmp_path: Path) -> None:
    report = gc.collect(Store(tmp_path / "nothing"), grace=GRACE, now=NOW)
    assert (report.reclaimed_jobs, report.reclaimed_temp, report.live_jobs) == ([], [], [])


@pytest.fixture
def background_deletes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """What gc hands to detached deletes (none starts here: the unit tier starts no process)."""
    started: list[Path] = []

    def start(path: Path, env: object = None) -> bool:
        started.append(path)
        return True

    monkeypatch.setattr(osapi, "start_background_delete", start)
    return started


def test_maybe_collect_runs_at_most_once_per_interval(store: Store, background_deletes: list[Path]) -> None:
    make_job(store, "jdead0000003", age_seconds=NOW - time.time() + GRACE * 2)
    first = gc.maybe_collect(store, grace=GRACE, interval=600)
    assert first is not None and first.reclaimed_jobs == ["jdead0000003"]
    # The gc of a job's setup deletes nothing itself: the dir was moved away for a detached delete.
    (trash,) = background_deletes
    assert trash.name.startswith(fsops.TEMP_PREFIX) and (trash / "uv" / "archive-v0" / "abc" / "mod.py").is_file()
    assert not store.job_dir("jdead0000003").exists()
    assert gc.maybe_collect(store, grace=GRACE, interval=600) is None
    os.utime(store.gc_stamp, (0, 0))  # the interval has passed
    assert gc.maybe_collect(store, grace=GRACE, interval=600) is not None


def test_maybe_collect_skips_while_another_gc_runs(store: Store) -> None:
    store.gc_stamp.touch()
    os.utime(store.gc_stamp, (0, 0))
    other = osapi.try_lock(store.gc_stamp)
    assert other is not None
    try:
        assert gc.maybe_collect(store, grace=GRACE, interval=600) is None
    finally:
        other.release()


def test_records_survive_as_json_for_status(store: Store) -> None:
    make_job(store, "jrec00000001", age_seconds=1)
    path = jobdirs.record_of(store.job_dir("jrec00000001"))
    data = json.loads(path.read_text())
    assert jobdirs.read_record(path) == data
    assert jobdirs.current_record(store, "jrec00000001") == {**data, "dir": str(store.job_dir("jrec00000001"))}
    path.write_text("{broken")
    assert jobdirs.read_record(path) is None


def test_gc_reclaims_trash_a_dead_background_delete_left(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.ensure()
    dead = store.jobs_dir / f"{fsops.TEMP_PREFIX}1-dead"
    busy = store.jobs_dir / f"{fsops.TEMP_PREFIX}2-busy"
    for trash in (dead, busy):
        (trash / "uv" / "archive-v0").mkdir(parents=True)
        (trash / "uv" / "archive-v0" / "f.py").write_text("x")
    os.utime(dead, (1_000_000, 1_000_000))
    report = gc.collect(store, grace=3600)
    assert str(dead) in report.reclaimed_temp and not dead.exists()
    assert busy.exists()  # still changing: a background delete may be working on it
    assert str(busy) in gc.collect(store, grace=0).reclaimed_temp and not busy.exists()  # `gc --grace 0s`: now


def finished_leftover(store: Store, key: str, *, age_seconds: float) -> Path:
    """A dir that finish could not move away: still there, its record renamed to the finished mark."""
    job_dir = jobdirs.new_dir(store, key)
    (job_dir / "uv" / "f.py").parent.mkdir(parents=True)
    (job_dir / "uv" / "f.py").write_text("x")
    jobdirs.write_record(job_dir, {"job": f"job-{key}", "dir": str(job_dir)})
    jobdirs.mark_finished(job_dir, jobdirs.record_of(job_dir))
    for path in (job_dir, jobdirs.finished_mark(job_dir)):
        age(path, age_seconds)
    return job_dir


def test_a_finished_jobs_leftover_dir_goes_at_once_with_no_grace(store: Store) -> None:
    job_dir = finished_leftover(store, "jfin00000001", age_seconds=1)
    report = gc.collect(store, grace=GRACE, now=NOW)
    assert report.reclaimed_finished == [str(job_dir)] and report.reclaimed_jobs == []
    assert not job_dir.exists() and not jobdirs.finished_mark(job_dir).exists()
    assert store.job_keys() == []


def test_a_finished_leftover_goes_even_while_a_new_allocation_of_the_id_lives(store: Store) -> None:
    old = finished_leftover(store, "jfin00000002", age_seconds=1)
    new = jobdirs.new_dir(store, "jfin00000002")
    jobdirs.write_record(new, {"job": "job-again", "dir": str(new)})
    held = osapi.try_lock(store.lease("jfin00000002"))
    assert held is not None
    try:
        report = gc.collect(store, grace=0, now=NOW)
    finally:
        held.release()
    assert report.reclaimed_finished == [str(old)] and report.live_jobs == ["jfin00000002"]
    assert not old.exists() and new.is_dir() and jobdirs.current_record(store, "jfin00000002") is not None


def test_a_finished_leftover_still_held_stays_for_a_later_gc(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    job_dir = finished_leftover(store, "jfin00000003", age_seconds=1)

    def held(path: Path) -> None:
        raise StoreError(f"1 entry of {path} could not be deleted: still locked")

    monkeypatch.setattr(fsops, "rmtree", held)
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_finished == []
    assert job_dir.is_dir() and jobdirs.finished_mark(job_dir).is_file()
    monkeypatch.undo()
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_finished == [str(job_dir)]


def test_the_gc_of_a_setup_hands_finished_leftovers_to_a_detached_delete(
    store: Store, background_deletes: list[Path]
) -> None:
    job_dir = finished_leftover(store, "jfin00000004", age_seconds=1)
    report = gc.collect(store, grace=GRACE, now=NOW, background=True)
    assert report.reclaimed_finished == [str(job_dir)] and not job_dir.exists()
    (trash,) = background_deletes
    assert (trash / "uv" / "f.py").is_file()  # moved away whole; the detached process deletes it


def test_dead_allocations_of_every_generation_go_after_the_grace(store: Store) -> None:
    dirs = [jobdirs.new_dir(store, "jgen00000001") for _ in range(2)]
    jobdirs.write_record(dirs[1], {"job": "j", "dir": str(dirs[1])})
    for path in (*dirs, jobdirs.record_of(dirs[1])):
        age(path, GRACE / 2)
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_jobs == []
    for path in (*dirs, jobdirs.record_of(dirs[1])):
        age(path, GRACE * 2)
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_jobs == ["jgen00000001"]
    assert not any(d.exists() for d in dirs) and store.job_keys() == []


def test_a_record_whose_dir_is_gone_goes_after_the_grace(store: Store) -> None:
    """What a setup killed between its record and its finish leaves once its dir went (or a layout 1 record)."""
    lone = jobdirs.new_dir(store, "jlone0000001")
    jobdirs.write_record(lone, {"job": "j", "dir": str(lone)})
    lone.rmdir()
    age(jobdirs.record_of(lone), GRACE / 2)
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_jobs == []
    age(jobdirs.record_of(lone), GRACE * 2)
    assert gc.collect(store, grace=GRACE, now=NOW).reclaimed_jobs == ["jlone0000001"]
    assert store.job_keys() == []


def test_a_file_left_in_the_jobs_dir_for_gc_goes_without_a_process(
    store: Store, background_deletes: list[Path]
) -> None:
    probe = store.jobs_dir / f"{fsops.TEMP_PREFIX}9-probe"
    probe.write_text("ci-cache probe")
    age(probe, 120)
    report = gc.collect(store, grace=GRACE, now=NOW, background=True)
    assert report.reclaimed_temp == [str(probe)] and not probe.exists() and background_deletes == []


def test_a_lease_file_alone_is_no_job_and_goes_at_once(store: Store) -> None:
    """What give_back leaves when a scan holds the lease file as the lease is given back: no dir, no record."""
    store.lease("jlease000001").touch()
    assert status.collect(store)["stale_jobs"] == []
    report = gc.collect(store, grace=GRACE, now=NOW, background=True)
    assert report.reclaimed_jobs == [] and not store.lease("jlease000001").exists()
    held = osapi.try_lock(store.lease("jlease000002"))  # the same, but held: a setup's, about to make its dir
    assert held is not None
    try:
        assert gc.collect(store, grace=GRACE, now=NOW).live_jobs == ["jlease000002"]
        assert store.lease("jlease000002").exists()
    finally:
        held.release()
