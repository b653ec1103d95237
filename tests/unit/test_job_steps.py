"""The steps of a job's life (ci_cache/job/), each on its own: mode, claim, seed, env, record, merge, prune,
release, and the two pipelines that run them (setup_or_off's fallback).

Setup runs in process (`in_process=True`, as `run` does), so no lease holder starts; the job dir's
background delete is replaced by an in-process one where a test releases a dir.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import pytest

from ci_cache import config, faults, fsops, gc, job, jobdirs, osapi, prune, status, summary
from ci_cache.errors import JobBusy, StoreError, UsageError
from ci_cache.job import bound, claim, context, env, merge, record, release, seed
from ci_cache.providers import JobIdentity
from ci_cache.store import Store
from ci_cache.tools.generic import GenericTool, TempTool


@pytest.fixture(autouse=True)
def background_deletes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The detached delete of a released dir runs here instead (the unit tier starts no process); returns
    the dirs it was given, in order."""
    started: list[Path] = []

    def delete_here(path: Path, env: object = None) -> bool:
        started.append(path)
        with contextlib.suppress(StoreError):  # what is held stays, as with `rd /s /q`
            fsops.rmtree(path)
        return True

    monkeypatch.setattr(osapi, "start_background_delete", delete_here)
    return started


def make_ctx(root: Path, *, trusted: bool = True, windows: bool = False, **settings: object) -> job.Context:
    cfg = config.Config.model_validate({"tools": ["pip", "temp"], "mode": "isolated", **settings})
    identity = JobIdentity(provider="local", job_id="build-1", trusted=trusted,
                           trust_reason="local run" if trusted else "fork pull request")
    return job.Context(config=cfg, env={}, cwd=root.parent, windows=windows, identity=identity, root=root)


# ---------------------------------------------------------------------------------------------------------
# The mode and the merge decision


@pytest.mark.parametrize(("mode", "merge_policy", "trusted", "expected"), [
    ("shared", "protected", False, "isolated"),
    ("direct", "protected", False, "isolated"),
    ("shared", "always", False, "shared"),
    ("shared", "protected", True, "shared"),
    ("isolated", "protected", False, "isolated"),
    ("off", "protected", False, "off"),
])
def test_an_untrusted_job_never_gets_a_mode_that_writes_to_the_shared_cache(
    tmp_path: Path, mode: str, merge_policy: str, trusted: bool, expected: str
) -> None:
    got, note = context.effective_mode(make_ctx(tmp_path, trusted=trusted, mode=mode, merge=merge_policy))
    assert got == expected
    assert (note is not None) == (got != mode)
    if note:
        assert "untrusted job (fork pull request)" in note and f"instead of {mode}" in note


@pytest.mark.parametrize(("case", "merges", "why"), [
    (("isolated", "always", "failure", True), True, "merge: always"),
    (("isolated", "success", "success", True), True, "merge: success"),
    (("isolated", "success", "cancelled", True), False, "merge: success, and the job's status is cancelled"),
    (("isolated", "never", "success", True), False, "merge: never"),
    (("isolated", "protected", "success", False), False, "merge: protected, and the job is untrusted (fork pull"),
    (("isolated", "protected", "success", True), True, "merge: protected"),
    (("shared", "always", "success", True), False, "mode shared: nothing to merge"),
    (("direct", "always", "success", True), False, "mode direct: nothing to merge"),
])
def test_the_merge_decision_and_its_reason(
    tmp_path: Path, case: tuple[str, str, str, bool], merges: bool, why: str
) -> None:
    mode, policy, status, trusted = case
    decided, reason = merge.decision(make_ctx(tmp_path, trusted=trusted, merge=policy), mode, status)
    assert decided == merges
    assert reason.startswith(why)


# ---------------------------------------------------------------------------------------------------------
# claim, record, release


def test_claim_in_process_holds_the_lease_and_a_second_claim_is_busy(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root")
    ctx.store.ensure()
    first = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    assert claim.claim(ctx, first, in_process=True) is None
    assert first.lease is not None
    second = job.Allocation(job=first.job, key=first.key, job_dir=first.job_dir, mode=first.mode)
    with pytest.raises(JobBusy):
        claim.claim(ctx, second, in_process=True)
    claim.give_back(ctx, first.lease)
    assert not ctx.store.lease(ctx.key).exists()


def test_clear_dead_attempt_removes_what_an_earlier_run_of_the_job_left(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root")
    ctx.store.ensure()
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    (alloc.job_dir / "pip").mkdir(parents=True)
    jobdirs.write_record(alloc.job_dir, {"job": "build-1", "token": "old"})
    newer = jobdirs.new_dir(ctx.store, ctx.key)
    jobdirs.write_record(newer, {"job": "build-1", "token": "older"})
    claim.clear_dead_attempt(ctx, alloc)
    assert not alloc.job_dir.exists() and not newer.exists() and jobdirs.current_record(ctx.store, ctx.key) is None
    assert os.listdir(ctx.store.jobs_dir) == []
    claim.clear_dead_attempt(ctx, alloc)  # nothing left: nothing to do


def test_clear_dead_attempt_removes_a_dir_a_setup_killed_before_its_record_left(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root")
    ctx.store.ensure()
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    dead = jobdirs.new_dir(ctx.store, ctx.key)
    (dead / "pip").mkdir()
    assert jobdirs.current_record(ctx.store, ctx.key) is None
    claim.clear_dead_attempt(ctx, alloc)
    assert not dead.exists()


def test_setup_writes_the_record_once_and_only_when_the_job_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scanner holds a file it has just seen: a second write, a rename over the first, would meet it."""
    ctx = make_ctx(tmp_path / "root")
    written: list[dict[str, object]] = []
    real = jobdirs.write_record

    def counted(job_dir: Path, data: dict[str, object]) -> None:
        written.append(dict(data))
        real(job_dir, data)

    monkeypatch.setattr(jobdirs, "write_record", counted)
    alloc = job.setup(ctx, in_process=True)
    (only,) = written
    assert only["status"] == "ready" and only["dir"] == str(alloc.job_dir) and only["token"]
    assert only["caches"] == alloc.caches and "restore" in only
    assert alloc.lease is not None
    job.finish(ctx, "success", held=alloc.lease)


def test_record_write_keeps_created_and_extra_across_writes(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root")
    ctx.store.ensure()
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    record.write(ctx, alloc, status="seeding", extra={"token": "t0k", "holder_pid": 42})
    first = jobdirs.read_record(jobdirs.record_of(alloc.job_dir))
    assert first is not None
    alloc.caches["pip"] = "/x"
    record.write(ctx, alloc, status="ready")
    second = jobdirs.read_record(jobdirs.record_of(alloc.job_dir))
    assert second is not None
    assert second["created"] == first["created"] and second["token"] == "t0k" and second["holder_pid"] == 42
    assert second["status"] == "ready" and second["caches"] == {"pip": "/x"} and second["pid"] == os.getpid()
    assert second["trusted"] is True and second["provider"] == "local"


def test_release_dir_moves_the_dir_away_at_once_for_a_background_delete(
    tmp_path: Path, background_deletes: list[Path]
) -> None:
    store = Store(tmp_path / "root")
    job_dir = jobdirs.new_dir(store, "j1")
    (job_dir / "uv").mkdir()
    jobdirs.write_record(job_dir, {"job": "build-1", "dir": str(job_dir)})
    assert release.release_dir(store, "j1", job_dir, {}) is None
    (trash,) = background_deletes
    assert trash.parent == store.jobs_dir and trash.name.startswith(fsops.TEMP_PREFIX)  # renamed, then deleted
    assert not job_dir.exists() and not jobdirs.record_of(job_dir).exists() and list(store.jobs_dir.iterdir()) == []
    assert release.release_dir(store, "j1", job_dir, {}) is None  # already gone: nothing to do


def test_a_dir_that_cannot_be_moved_stays_marked_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background_deletes: list[Path]
) -> None:
    """What a scanner's open file does on Windows: the rename fails. Nothing is retried or deleted inline."""
    store = Store(tmp_path / "root")
    job_dir = jobdirs.new_dir(store, "j1")
    (job_dir / "uv").mkdir()
    jobdirs.write_record(job_dir, {"job": "build-1", "dir": str(job_dir)})
    renames: list[str] = []
    rename = os.rename

    def held(src: str, dst: str) -> None:
        renames.append(src)
        if src == str(job_dir):
            raise OSError(errno.EBUSY, "Sharing violation", src)  # transient, as fsops sees winerror 32 on Windows
        rename(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "rename", held)
        left = release.release_dir(store, "j1", job_dir, {})
    assert left == release.LeftForGc(job_dir, "Sharing violation", held=True)  # the OS's words, once
    assert renames == [str(job_dir), str(jobdirs.record_of(job_dir))]  # one attempt each
    assert not jobdirs.record_of(job_dir).exists()
    mark = jobdirs.finished_mark(job_dir)
    assert json.loads(mark.read_text())["job"] == "build-1"  # the record, renamed: it says the job finished
    assert background_deletes == [job_dir]  # what is not held goes now, in place (here: all of it)
    assert gc.collect(store, grace=3600).reclaimed_finished == [] and not mark.exists()  # its dir went meanwhile


def test_a_record_a_scan_holds_is_marked_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background_deletes: list[Path]
) -> None:
    """A scan holds every file it has not seen: finish cannot delete (nor rename) the record it just wrote.
    It makes the finished mark anew instead, and gc drops the record and the mark; no one waits."""
    store = Store(tmp_path / "root")
    job_dir = jobdirs.new_dir(store, "j1")
    the_record = jobdirs.record_of(job_dir)
    jobdirs.write_record(job_dir, {"job": "build-1", "dir": str(job_dir)})
    attempts: list[str] = []

    def held(path: str, *args: object) -> None:
        attempts.append(path)
        raise OSError(errno.EBUSY, "Sharing violation", path)

    rename = os.rename

    def rename_but_the_record(src: str, dst: str) -> None:
        if src == str(the_record):
            held(src)
        rename(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "unlink", held)
        patched.setattr(os, "rename", rename_but_the_record)
        assert release.release_dir(store, "j1", job_dir, {}) is None  # the dir itself moved away
    assert attempts == [str(the_record)] * 2  # one attempt to delete it, one to rename it
    mark = jobdirs.finished_mark(job_dir)
    assert json.loads(mark.read_text())["job"] == "build-1" and the_record.exists()
    assert status.collect(store)["stale_jobs"] == []  # a finished job's record, not a dead job's
    gc.collect(store, grace=3600)
    assert not mark.exists() and not the_record.exists() and store.job_keys() == []


def test_the_next_allocation_of_an_id_never_waits_for_a_record_a_scan_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background_deletes: list[Path]
) -> None:
    """Two `run`s of one id in a row (each uv call of a job): a scan still holds the first one's record, so
    neither its finish nor the next setup can delete it. The next setup writes a record of its own."""
    ctx = make_ctx(tmp_path / "root")
    first = job.setup(ctx, in_process=True)
    held_record = jobdirs.record_of(first.job_dir)
    unlink, rename = os.unlink, os.rename

    def unlink_but_held(path: str, *args: object, **kwargs: object) -> None:
        if path == str(held_record):
            raise OSError(errno.EBUSY, "Sharing violation", path)
        unlink(path)

    def rename_but_held(src: str, dst: str) -> None:
        if src == str(held_record) or dst == str(held_record):
            raise OSError(errno.EBUSY, "Sharing violation", src)
        rename(src, dst)

    with monkeypatch.context() as patched:
        patched.setattr(os, "unlink", unlink_but_held)
        patched.setattr(os, "rename", rename_but_held)
        assert job.finish(ctx, "success", held=first.lease).warnings == []
        assert held_record.exists() and jobdirs.current_record(ctx.store, ctx.key) is None  # marked finished
        second = job.setup(ctx, in_process=True)
        assert second.mode == "isolated" and second.warnings == []
        mine = jobdirs.current_record(ctx.store, ctx.key)
        assert mine is not None and mine["dir"] == str(second.job_dir) and held_record.exists()
        result = job.finish(ctx, "success", held=second.lease, token=second.env[job.TOKEN_VAR])
        assert result.warnings == [] and not second.job_dir.exists()
    gc.collect(ctx.store, grace=3600)  # let go: gc drops the record and its mark
    assert os.listdir(ctx.store.jobs_dir) == []


def test_setup_never_waits_for_nor_deletes_what_a_finished_allocation_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, background_deletes: list[Path]
) -> None:
    ctx = make_ctx(tmp_path / "root")
    first = job.setup(ctx, in_process=True)
    assert first.job_dir.parent == ctx.store.jobs_dir and first.job_dir.name.startswith(ctx.key + ".")
    with monkeypatch.context() as patched:
        patched.setattr(osapi, "start_background_delete", lambda path, env=None: False)
        patched.setattr(jobdirs, "move_away", _held)
        result = job.finish(ctx, "success", held=first.lease)
    # Held open by another process is no fault of the job's: a fact in the summary, not a warning.
    assert first.job_dir.is_dir() and result.warnings == []
    assert result.cleanup == {"left_for_gc": str(first.job_dir), "reason": "Sharing violation"}
    text = summary.text(result.as_json())
    assert text.count("Sharing violation") == 1 and "the next gc deletes it" in text
    second = job.setup(ctx, in_process=True)  # the same id: a dir of its own, the old one untouched
    assert second.job_dir != first.job_dir and second.job_dir.is_dir() and first.job_dir.is_dir()
    assert background_deletes == []
    assert jobdirs.current_record(ctx.store, ctx.key)["dir"] == str(second.job_dir)  # type: ignore[index]
    job.finish(ctx, "success", held=second.lease)
    assert not second.job_dir.exists() and first.job_dir.is_dir()


def _held(path: Path) -> Path:
    raise StoreError(f"move {path} out of the way: still locked by another process after 1 attempts",
                     hint="an antivirus scanner or another job holds the file") from PermissionError(
                         13, "Sharing violation", str(path), None, 32)


def test_a_dir_that_cannot_be_moved_for_another_reason_is_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path / "root")
    alloc = job.setup(ctx, in_process=True)

    def refused(path: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as patched:
        patched.setattr(jobdirs, "move_away", refused)
        result = job.finish(ctx, "success", held=alloc.lease)
    assert result.warnings == [f"could not release the job dir {alloc.job_dir} (Permission denied); `ci-cache gc` "
                               "deletes it"]
    assert jobdirs.finished_mark(alloc.job_dir).is_file()


# ---------------------------------------------------------------------------------------------------------
# seed and env


def test_seed_none_starts_every_isolated_cache_empty_with_an_empty_manifest(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root", seed="none")
    (ctx.store.shared_cache("pip") / "old.whl").parent.mkdir(parents=True)
    (ctx.store.shared_cache("pip") / "old.whl").write_text("w")
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    seed.allocate(ctx, alloc, [GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"}), TempTool()])
    assert alloc.seeded == {"pip": {"scope": "none"}}
    assert list(Path(alloc.caches["pip"]).iterdir()) == []
    assert (alloc.job_dir / "pip.manifest.json").read_bytes() == b"{}"
    assert alloc.env["PIP_CACHE_DIR"] == alloc.caches["pip"]
    assert alloc.env["TMPDIR"] == str(alloc.job_dir / "tmp") and "seed" in alloc.phases


def test_a_failed_seed_starts_the_job_cold_with_a_warning_or_fails_it_when_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: GenericTool, request: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(GenericTool, "seed", broken)
    ctx = make_ctx(tmp_path / "root")
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="isolated")
    seed.allocate(ctx, alloc, [GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"})])
    assert "No space left" in alloc.seeded["pip"]["failed"]
    # The cause names the full disk (with its free space now, which other processes change) and the remedy.
    (warning,) = alloc.warnings
    fault = faults.explain(OSError(28, "No space left on device"), ctx.root)
    assert fault.full
    assert warning.startswith(f"seeding the pip cache failed: the disk holding the ci-cache root {ctx.root} is "
                              "full (No space left on device: ")
    assert warning.endswith(f" ({fault.hint}); the job starts with an empty cache")
    assert list(Path(alloc.caches["pip"]).iterdir()) == []
    strict = ctx._replace(config=ctx.config.model_copy(update={"strict": True}))
    with pytest.raises(StoreError, match="seeding the pip cache failed"):
        seed.allocate(strict, job.Allocation(job="b", key="k", job_dir=tmp_path / "other", mode="isolated"),
                      [GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"})])


@pytest.mark.parametrize("mode", ["shared", "direct"])
def test_shared_and_direct_jobs_use_the_shared_cache_itself(tmp_path: Path, mode: str) -> None:
    ctx = make_ctx(tmp_path / "root", mode=mode)
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode=mode)
    seed.allocate(ctx, alloc, [GenericTool("pip", {"PIP_CACHE_DIR": "{dir}"})])
    assert alloc.caches["pip"] == str(ctx.store.shared_cache("pip")) and alloc.seeded == {}


@pytest.mark.parametrize("in_process", [True, False])
def test_env_export_installs_shims_in_shared_mode_and_puts_them_on_path_across_processes(
    tmp_path: Path, in_process: bool
) -> None:
    ctx = make_ctx(tmp_path / "root", mode="shared")
    alloc = job.Allocation(job="build-1", key=ctx.key, job_dir=ctx.store.job_dir(ctx.key), mode="shared")
    env.export(ctx, alloc, [GenericTool("pip", {}, commands=("pip", "pip3")), TempTool()], token="t0k",
               in_process=in_process)
    assert sorted(p.name for p in (alloc.job_dir / "bin").iterdir()) == ["pip", "pip3"]
    assert alloc.path_prepend == ([] if in_process else [str(alloc.job_dir / "bin")])
    assert alloc.env == {"CI_CACHE_JOB": "build-1", "CI_CACHE_ROOT": str(ctx.root),
                         "CI_CACHE_JOB_DIR": str(alloc.job_dir), job.TOKEN_VAR: "t0k"}


def test_env_applied_sets_the_allocation_over_the_base_and_its_path_first(tmp_path: Path) -> None:
    alloc = job.Allocation(job="j", key="k", job_dir=tmp_path, mode="shared", env={"UV_CACHE_DIR": "/c"},
                           path_prepend=["/shims"])
    got = job.job_env({"PATH": "/usr/bin", "UV_CACHE_DIR": "/old", "HOME": "/h"}, alloc)
    assert got == {"PATH": os.pathsep.join(["/shims", "/usr/bin"]), "UV_CACHE_DIR": "/c", "HOME": "/h"}
    alloc.path_prepend = []
    assert job.job_env({"PATH": "/usr/bin"}, alloc)["PATH"] == "/usr/bin"


# ---------------------------------------------------------------------------------------------------------
# setup_or_off, and finish's prune step


def test_setup_or_off_runs_off_where_that_is_safe_and_fails_where_it_is_not(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    ctx = make_ctx(blocker / "root")
    alloc = job.setup_or_off(ctx, in_process=True)
    assert alloc.mode == "off" and alloc.env == {job.TOKEN_VAR: job.NO_TOKEN}
    (warning,) = alloc.warnings
    assert "is not usable" in warning and warning.endswith("; the job runs without ci-cache")
    with pytest.raises(StoreError):
        job.setup_or_off(ctx._replace(config=ctx.config.model_copy(update={"strict": True})), in_process=True)
    held = make_ctx(tmp_path / "root")
    first = job.setup(held, in_process=True)
    with pytest.raises(UsageError):  # a busy id is a usage error: never off
        job.setup_or_off(held, in_process=True)
    assert first.lease is not None
    job.finish(held, "success", held=first.lease)


def test_prune_on_finish_bounds_only_when_asked_and_a_failure_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path / "root", prune={"on_finish": True, "max_size": "10"})
    ctx.store.shared_cache("pip").mkdir(parents=True)
    for name in ("a", "b"):
        (ctx.store.shared_cache("pip") / name).write_bytes(b"x" * 8)
    result = job.FinishResult(job="build-1", key=ctx.key, mode="isolated", status="success", merge_decision="",
                              merged={"pip": {}})
    bound.prune_if_over(ctx, result)
    assert "prune" in result.phases and len(list(ctx.store.shared_cache("pip").iterdir())) == 1

    unbounded = job.FinishResult(job="b", key="k", mode="isolated", status="success", merge_decision="")
    bound.prune_if_over(make_ctx(tmp_path / "root", prune={"on_finish": True}), unbounded)
    bound.prune_if_over(make_ctx(tmp_path / "root", prune={"max_size": "1"}), unbounded)
    assert unbounded.phases == {} and unbounded.warnings == []

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Access is denied")

    monkeypatch.setattr(prune, "prune_store", broken)
    bound.prune_if_over(ctx, result)
    assert result.warnings == ["prune after the merge failed ([Errno 5] Access is denied); the shared cache is "
                               "valid, only not bounded"]


def test_finish_of_a_shared_job_merges_nothing_and_releases_everything(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path / "root", mode="shared")
    alloc = job.setup(ctx, in_process=True)
    assert (alloc.job_dir / "bin" / "pip").is_file()
    result = job.finish(ctx, "success", held=alloc.lease)
    assert result.merge_decision == "mode shared: nothing to merge" and result.merged == {}
    assert "cleanup" in result.phases and "merge" not in result.phases
    assert not alloc.job_dir.exists() and not ctx.store.lease(ctx.key).exists()
    assert jobdirs.current_record(ctx.store, ctx.key) is None and os.listdir(ctx.store.jobs_dir) == []
