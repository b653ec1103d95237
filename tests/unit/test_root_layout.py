"""The root's layout version (ci_cache/rootlayout.py), its writability probe (Store.ensure) and what a fault
of the file system is said to be (ci_cache/faults.py)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from ci_cache import __version__, faults, fsops, jobdirs, osapi, rootlayout
from ci_cache.errors import StoreError
from ci_cache.store import Store


def sharing_violation() -> PermissionError:
    exc = PermissionError(errno.EACCES, "Sharing violation")
    exc.winerror = 32  # type: ignore[attr-defined]
    return exc


def old_root(tmp_path: Path) -> Store:
    """What a ci-cache from before layouts were recorded leaves: the same folders, no layout.json."""
    store = Store(tmp_path / "root")
    (store.shared_cache("uv") / "archive-v0" / "a1").mkdir(parents=True)
    store.jobs_dir.mkdir()
    jobdirs.record_of(store.job_dir("jold")).write_text("{}")
    return store


def recorded(store: Store) -> dict[str, object]:
    data: dict[str, object] = json.loads(store.layout_file.read_text())
    return data


# ---------------------------------------------------------------------------------------------------------
# Recording, checking, migrating


def test_a_new_root_gets_this_layout(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    hold = rootlayout.open_root(store, timeout=1)
    hold.release()
    data = recorded(store)
    assert data["layout"] == rootlayout.LAYOUT and data["written_by"] == f"ci-cache {__version__}"
    assert "migrated_from" not in data


def test_an_unversioned_root_is_migrated_in_place_and_keeps_everything(tmp_path: Path) -> None:
    store = old_root(tmp_path)
    assert rootlayout.current(store) == 0
    rootlayout.use(store, timeout=1).release()
    assert recorded(store)["layout"] == rootlayout.LAYOUT and recorded(store)["migrated_from"] == 0
    assert (store.shared_cache("uv") / "archive-v0" / "a1").is_dir()
    assert jobdirs.record_of(store.job_dir("jold")).exists()  # layout 0's record of its dir `jobs/jold`: as it was


def test_a_newer_layout_is_refused_naming_who_wrote_it_and_what_to_do(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.root.mkdir()
    store.layout_file.write_text(json.dumps({"layout": rootlayout.LAYOUT + 1, "written_by": "ci-cache 9.1.0"}))
    before = sorted(os.listdir(store.root))
    with pytest.raises(StoreError) as info:
        rootlayout.use(store, timeout=1)
    message = str(info.value)
    assert f"has layout {rootlayout.LAYOUT + 1}, written by ci-cache 9.1.0" in message
    assert f"this ci-cache {__version__} knows layouts up to {rootlayout.LAYOUT} and will not write to it" in message
    assert "upgrade ci-cache on this agent" in message and "docs/upgrading.md" in message
    assert info.value.exit_code == 4
    # Nothing written but the lock file it looked through.
    assert sorted(os.listdir(store.root)) == sorted({*before, "layout.lock"})
    assert json.loads(store.layout_file.read_text())["layout"] == rootlayout.LAYOUT + 1


@pytest.mark.parametrize("text", ["{not json", '{"layout": "two"}', '{"layout": -1}', '["layout", 1]', "{}",
                                  '{"layout": true}'])
def test_a_layout_record_that_is_not_ours_is_refused_never_guessed(tmp_path: Path, text: str) -> None:
    store = old_root(tmp_path)
    store.layout_file.write_text(text)
    with pytest.raises(StoreError, match="is not a layout record ci-cache can read") as info:
        rootlayout.use(store, timeout=1)
    assert "delete the root" in str(info.value)
    assert store.layout_file.read_text() == text


def test_a_setup_on_a_newer_root_runs_the_job_off_saying_why(tmp_path: Path) -> None:
    from ci_cache import config, job
    from ci_cache.providers import JobIdentity

    store = Store(tmp_path / "root")
    store.root.mkdir()
    store.layout_file.write_text(json.dumps({"layout": 7, "written_by": "ci-cache 3.0.0"}))
    cfg = config.Config.model_validate({"tools": ["temp"], "mode": "isolated"})
    ctx = job.Context(config=cfg, env={}, cwd=tmp_path, windows=False, root=store.root,
                      identity=JobIdentity(provider="local", job_id="j", trusted=True, trust_reason="local run"))
    alloc = job.setup_or_off(ctx, in_process=True)
    assert alloc.mode == "off"
    assert "written by ci-cache 3.0.0" in alloc.warnings[0] and alloc.warnings[0].endswith("without ci-cache")
    assert not store.job_dir(ctx.key).exists() and not store.lease(ctx.key).exists()


# A migration that older jobs could not survive, as a later layout may bring: it moves the jobs dir.
def _move_jobs(store: Store) -> None:
    old, new = store.root / "jobs", store.root / "jobs2"
    if old.exists():
        fsops.replace(old, new)


@pytest.fixture
def incompatible(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []

    def step(store: Store) -> None:
        ran.append(store.root.name)
        _move_jobs(store)

    monkeypatch.setattr(rootlayout, "LAYOUT", 2)
    moves = rootlayout.Migration(2, "move jobs", breaks=frozenset({0, 1}), run=step)
    monkeypatch.setitem(rootlayout.MIGRATIONS, 1, moves)
    return ran


def test_a_migration_older_jobs_cannot_survive_waits_for_them(tmp_path: Path, incompatible: list[str]) -> None:
    store = old_root(tmp_path)
    rootlayout.write(store, 1)
    job_of_layout_1 = osapi.try_lock(store.layout_lock, shared=True)  # a job of layout 1 holds it while it runs
    assert job_of_layout_1 is not None
    with pytest.raises(StoreError) as info:
        rootlayout.use(store, timeout=1)
    assert "has layout 1" in str(info.value) and "must migrate it to layout 2" in str(info.value)
    assert "jobs of the old layout are still running" in str(info.value)
    assert "the first job after they end migrates it" in str(info.value)
    assert incompatible == [] and recorded(store)["layout"] == 1
    job_of_layout_1.release()
    rootlayout.use(store, timeout=1).release()
    assert incompatible == ["root"] and recorded(store)["layout"] == 2 and (store.root / "jobs2").is_dir()


def test_a_migration_waits_for_jobs_that_hold_only_their_lease(tmp_path: Path, incompatible: list[str]) -> None:
    """A ci-cache from before the layout lock takes only its lease: that is enough to keep a migration off."""
    store = old_root(tmp_path)
    lease = osapi.try_lock(store.lease("jold"))
    assert lease is not None
    with pytest.raises(StoreError, match=r"1 job\(s\) still hold their lease \(jold\)"):
        rootlayout.use(store, timeout=1)
    assert incompatible == []
    lease.release()
    rootlayout.use(store, timeout=1).release()
    assert incompatible == ["root"] and recorded(store)["layout"] == 2


def test_layout_1_records_move_beside_their_dirs_once_its_jobs_end(tmp_path: Path) -> None:
    """Layout 1 kept one record per job id, `jobs/<key>.json`, naming the allocation's dir; layout 2 keeps
    each beside its dir. A record naming no dir of its own (layout 0's) stays what it was."""
    store = old_root(tmp_path)
    rootlayout.write(store, 1)
    gen_dir = store.jobs_dir / "jlive.ab12"
    gen_dir.mkdir()
    (store.jobs_dir / "jlive.json").write_text(json.dumps({"job": "live", "dir": str(gen_dir)}))
    job_of_layout_1 = osapi.try_lock(store.lease("jlive"))
    assert job_of_layout_1 is not None
    with pytest.raises(StoreError, match=r"1 job\(s\) still hold their lease \(jlive\)"):
        rootlayout.use(store, timeout=1)
    assert (store.jobs_dir / "jlive.json").is_file() and recorded(store)["layout"] == 1  # untouched
    job_of_layout_1.release()
    rootlayout.use(store, timeout=1).release()
    assert recorded(store)["layout"] == 2 and not (store.jobs_dir / "jlive.json").exists()
    assert jobdirs.current_record(store, "jlive") == {"job": "live", "dir": str(gen_dir)}
    assert jobdirs.record_of(store.job_dir("jold")).read_text() == "{}"


def test_a_root_of_layout_0_migrates_at_once_while_its_jobs_run(tmp_path: Path) -> None:
    """A ci-cache from before layouts never checks them, and its records keep their names: nothing to wait for."""
    store = old_root(tmp_path)
    job_of_layout_0 = osapi.try_lock(store.lease("jold"))
    assert job_of_layout_0 is not None
    try:
        rootlayout.use(store, timeout=1).release()
    finally:
        job_of_layout_0.release()
    assert recorded(store)["layout"] == rootlayout.LAYOUT == 2


def test_a_process_waits_while_another_migrates_then_uses_the_migrated_root(
    tmp_path: Path, incompatible: list[str]
) -> None:
    store = old_root(tmp_path)
    rootlayout.write(store, 1)
    migrator = osapi.try_lock(store.layout_lock)  # another process is migrating
    assert migrator is not None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(rootlayout.use(store, timeout=30)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and got == []  # waiting, not refusing
    _move_jobs(store)
    rootlayout.write(store, 2, previous=1)
    migrator.release()
    waiter.join(30)
    (hold,) = got
    assert isinstance(hold, osapi.FileLockHandle)
    hold.release()
    assert incompatible == []  # it found the work done and did not redo it


def test_a_migration_killed_half_way_is_finished_by_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = old_root(tmp_path)
    monkeypatch.setattr(rootlayout, "LAYOUT", 3)
    moved: list[int] = []

    def second(_store: Store) -> None:
        moved.append(2)
        if len(moved) == 1:
            raise KeyboardInterrupt  # killed inside step 2 -> 3

    none: frozenset[int] = frozenset()
    monkeypatch.setitem(rootlayout.MIGRATIONS, 1, rootlayout.Migration(2, "one", breaks=none, run=lambda s: None))
    monkeypatch.setitem(rootlayout.MIGRATIONS, 2, rootlayout.Migration(3, "two", breaks=none, run=second))
    with pytest.raises(KeyboardInterrupt):
        rootlayout.use(store, timeout=1)
    assert recorded(store)["layout"] == 2  # every finished step is recorded
    rootlayout.use(store, timeout=1).release()
    assert recorded(store)["layout"] == 3 and moved == [2, 2]


def test_a_layout_with_no_way_forward_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = old_root(tmp_path)
    monkeypatch.setattr(rootlayout, "MIGRATIONS", {})
    expected = rf"has layout 0, which this ci-cache .* cannot migrate to layout {rootlayout.LAYOUT}"
    with pytest.raises(StoreError, match=expected):
        rootlayout.use(store, timeout=1)
    assert not store.layout_file.exists()


# ---------------------------------------------------------------------------------------------------------
# The writability probe


def test_the_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    store.ensure()
    assert sorted(os.listdir(store.root)) == ["CACHEDIR.TAG", "jobs", "shared"]
    assert os.listdir(store.jobs_dir) == []


def test_a_held_probe_file_is_left_for_gc_and_the_root_is_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scanner holds the fresh probe file (sharing violation on delete): the write proved the root
    writable, so that is no reason to run the job unprotected; gc deletes the file later."""
    store = Store(tmp_path / "root")
    real_unlink = os.unlink

    def held(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if fsops.TEMP_PREFIX in os.fspath(path):
            raise sharing_violation()
        real_unlink(path)

    monkeypatch.setattr(os, "unlink", held)
    for _ in range(3):
        store.ensure()
    monkeypatch.undo()
    left = os.listdir(store.jobs_dir)
    assert len(left) == 3 and all(fsops.is_temp_name(n) for n in left)
    assert store.job_keys() == []  # never mistaken for a job


@pytest.mark.parametrize(("setup", "cause", "remedy"), [
    ("file-root", "is a file, not a folder", "move it out of the way"),
    ("file-parent", "is a file, not a folder", "move it out of the way"),
])
def test_an_unusable_root_says_what_stands_in_the_way(tmp_path: Path, setup: str, cause: str, remedy: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    root = blocker if setup == "file-root" else blocker / "root"
    with pytest.raises(StoreError) as info:
        Store(root).ensure()
    assert f"the ci-cache root {root} is not usable: {blocker} {cause}" in str(info.value)
    assert remedy in str(info.value) and "writable folder with free space" not in str(info.value)


@pytest.mark.skipif(osapi.IS_WINDOWS or os.geteuid() == 0, reason="root writes anywhere")
def test_a_root_without_write_permission_says_so(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o500)
    with pytest.raises(StoreError, match="permission denied on"):
        Store(parent / "root").ensure()


@pytest.mark.parametrize(("code", "cause", "remedy"), [
    (errno.ENOSPC, "is full (No space left on device: ", "`ci-cache prune --max-size SIZE`"),
    (errno.EDQUOT, "the disk quota for the ci-cache root", "on a bigger disk"),
    (errno.EROFS, "is on a read-only file system", "remount it read-write"),
    (errno.EACCES, "permission denied on /r/jobs/x", "give the agent's user write access"),
    (errno.EIO, "an I/O error on the disk", "check the disk"),
])
def test_each_fault_names_its_cause_and_remedy(tmp_path: Path, code: int, cause: str, remedy: str) -> None:
    fault = faults.explain(OSError(code, os.strerror(code), "/r/jobs/x"), tmp_path)
    assert cause in fault.cause and remedy in fault.hint
    assert fault.full == (code in (errno.ENOSPC, errno.EDQUOT))


def test_a_lock_held_for_good_keeps_its_own_words(tmp_path: Path) -> None:
    held = StoreError("delete x: still locked by another process after 8 attempts", hint="exclude the root")
    fault = faults.explain(held, tmp_path)
    assert fault == faults.Fault("delete x: still locked by another process after 8 attempts", "exclude the root")
    assert "held by another process" in faults.explain(sharing_violation(), tmp_path).cause
