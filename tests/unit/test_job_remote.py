"""The fleet tier's step in a job's life (ci_cache/job/remote.py), on synthetic uv caches over obstore's
in-memory store: the pull at setup, the push at finish of only what the job added, the trust policy, and
how failures degrade. The real thing, with uv and real servers, is in tests/remote."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_cache import config, job, jobdirs, keyfiles, osapi
from ci_cache.errors import RemoteError
from ci_cache.job import remote
from ci_cache.providers import JobIdentity
from ci_cache.remote import layout
from ci_cache.remote.budget import run
from ci_cache.tools.uv import UvTool
from ci_cache.tools.uv.remote import UvRemote
from tests.unit.test_uv_remote import ALPHA_WHL, LINUX, CountingStore, do_push, memory
from tests.unit.uvcache import WHEELS
from tests.unit.uvremote import BUCKETS, add_wheel, sha

URL = "s3://fleet/team"


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """No background delete (the unit tier starts no process); uv's buckets known without asking uv."""
    monkeypatch.setattr(osapi, "start_background_delete", lambda *args, **kwargs: False)
    monkeypatch.setattr(osapi, "start_bulk_link", lambda *args, **kwargs: None)  # links in Python, not `cp -al`
    monkeypatch.setattr(UvTool, "remote", lambda self, env: UvRemote({}, machine=LINUX, buckets=BUCKETS))


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingStore]:
    counting = CountingStore(memory())
    monkeypatch.setattr(remote, "_open", lambda ctx, timeout: counting)
    yield counting


def make_ctx(tmp_path: Path, *, trusted: bool = True, workspace: Path | None = None, **settings: Any) -> job.Context:
    data: dict[str, Any] = {"tools": ["uv"], "mode": "isolated", "remote": {"url": URL}}
    for key, value in settings.items():
        if key.startswith("remote_"):
            data["remote"][key.removeprefix("remote_")] = value
        else:
            data[key] = value
    cfg = config.Config.model_validate(data)
    work = workspace or tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    identity = JobIdentity(provider="local", job_id="build-1", trusted=trusted, workspace=str(work),
                           trust_reason="local run" if trusted else "fork pull request")
    return job.Context(config=cfg, env={}, cwd=tmp_path, windows=False, identity=identity, root=tmp_path / "root")


def fleet(tmp_path: Path, store: CountingStore) -> None:
    """Another agent published demo-alpha 1.0.0 (and demo-beta, which it needs)."""
    other = tmp_path / "other"
    add_wheel(other, "demo-alpha", "1.0.0", "AlphaArchive0001", requires=("demo-beta>=1",))
    add_wheel(other, "demo-beta", "1.0.0", "BetaArchive00001")
    assert do_push(store.inner, other).entries_pushed == 4  # two wheels, two listings


def pinned(ctx: job.Context) -> None:
    (ctx.workspace / "requirements.txt").write_text(f"demo-alpha==1.0.0 --hash=sha256:{sha(ALPHA_WHL)}\n")


def objects(store: CountingStore) -> list[str]:
    return sorted(m.key for m in run(lambda: store.inner.list("")))


@pytest.mark.parametrize(("merge", "push", "trusted", "status", "allowed", "why"), [
    ("always", None, True, "failure", True, "remote.push: always"),
    ("success", None, True, "failure", False, "remote.push: success, and the job's status is failure"),
    ("success", None, True, "success", True, "remote.push: success"),
    ("never", None, True, "success", False, "remote.push: never"),
    ("never", "always", True, "success", True, "remote.push: always"),
    ("protected", None, False, "success", False, "untrusted (fork pull request)"),
    ("protected", "always", False, "success", False, "untrusted"),  # merge: protected keeps it from writing
    ("always", "protected", False, "success", False, "untrusted"),
    ("always", None, False, "success", True, "remote.push: always"),
    ("protected", None, True, "success", True, "remote.push: protected"),
])
def test_the_push_decision_and_its_reason(tmp_path: Path, *, merge: str, push: str | None, trusted: bool, status: str,
                                          allowed: bool, why: str) -> None:
    extra: dict[str, Any] = {"remote_push": push} if push else {}
    ctx = make_ctx(tmp_path, trusted=trusted, merge=merge, **extra)
    decided, reason = remote.push_decision(ctx, status)
    assert decided is allowed and why in reason


def test_setup_pulls_what_the_key_files_name_and_seeds_it(tmp_path: Path, store: CountingStore) -> None:
    fleet(tmp_path, store)
    ctx = make_ctx(tmp_path)
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    shared = ctx.store.shared_cache("uv")
    assert (shared / f"{WHEELS}/demo-alpha/1.0.0-py3-none-any.http").is_file()
    assert (alloc.job_dir / "uv" / f"{WHEELS}/demo-alpha/1.0.0-py3-none-any.http").is_file()  # then seeded
    pulled = jobdirs.current_record(ctx.store, ctx.key)["remote"]["pull"]  # type: ignore[index]
    assert pulled["key_files"] == [str(ctx.workspace / "requirements.txt")]
    # The wheel, and its index listing: a requirements file is resolved on install.
    assert pulled["tools"]["uv"]["entries_installed"] == 2 and pulled["tools"]["uv"]["warnings"] == []
    assert "pull" in alloc.phases and not list((alloc.job_dir).glob("uv.pulling*"))
    # Finish with nothing new: no request at all, and the summary carries the pull.
    calls = dict(store.calls)
    result = job.finish(ctx, "success", held=alloc.lease)
    assert store.calls == calls
    assert result.remote["pull"] == pulled and result.remote["push"] == {}


def test_finish_pushes_only_what_the_job_added(tmp_path: Path, store: CountingStore) -> None:
    fleet(tmp_path, store)
    ctx = make_ctx(tmp_path)
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    add_wheel(alloc.job_dir / "uv", "demo-new", "2.0", "NewArchive000001")  # the job downloaded it
    result = job.finish(ctx, "success", held=alloc.lease)
    pushed = result.remote["push"]["uv"]
    assert (pushed["entries"], pushed["entries_pushed"], pushed["blobs_pushed"]) == (2, 2, 1)  # its wheel, listing
    assert any("demo-new" in key for key in objects(store))
    assert "push" in result.phases


@pytest.mark.parametrize("mode", ["shared", "direct"])
def test_without_a_merge_what_the_shared_cache_gained_since_setup_is_pushed(tmp_path: Path, store: CountingStore,
                                                                            mode: str) -> None:
    ctx = make_ctx(tmp_path, mode=mode)
    shared = ctx.store.shared_cache("uv")
    add_wheel(shared, "demo-old", "1.0", "OldArchive000001")  # there before the job: not its to push
    alloc = job.setup(ctx, in_process=True)
    add_wheel(shared, "demo-new", "2.0", "NewArchive000001")
    result = job.finish(ctx, "success", held=alloc.lease)
    assert result.remote["push"]["uv"]["entries_pushed"] == 2
    keys = objects(store)
    assert any("demo-new" in k for k in keys) and not any("demo-old" in k for k in keys)


def test_an_untrusted_job_pulls_and_writes_nothing_not_even_a_used_mark(tmp_path: Path, store: CountingStore) -> None:
    fleet(tmp_path, store)
    before = objects(store)
    ctx = make_ctx(tmp_path, trusted=False, merge="protected")
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    assert jobdirs.current_record(ctx.store, ctx.key)["remote"]["pull"]["tools"]["uv"]["entries_installed"] == 2  # type: ignore[index]
    assert not list(alloc.job_dir.glob("*.remote-groups.json"))  # nothing to compare with: it never pushes
    add_wheel(alloc.job_dir / "uv", "demo-new", "2.0", "NewArchive000001")
    result = job.finish(ctx, "success", held=alloc.lease)
    assert "untrusted" in result.remote["push_decision"] and "push" not in result.remote
    assert objects(store) == before and store.calls["put"] == 0


def test_a_job_whose_files_name_nothing_pulls_nothing(tmp_path: Path, store: CountingStore) -> None:
    ctx = make_ctx(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    pulled = jobdirs.current_record(ctx.store, ctx.key)["remote"]["pull"]  # type: ignore[index]
    assert "no lock, requirements or pyproject file" in pulled["skipped"] and "tools" not in pulled
    assert sum(store.calls.values()) == 0
    job.finish(ctx, "success", held=alloc.lease)


def test_no_remote_configured_means_no_step_at_all(tmp_path: Path, store: CountingStore) -> None:
    cfg = config.Config.model_validate({"tools": ["uv"], "mode": "isolated"})
    ctx = make_ctx(tmp_path)
    ctx = job.Context(config=cfg, env={}, cwd=ctx.cwd, windows=False, identity=ctx.identity, root=ctx.root)
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    assert "remote" not in jobdirs.current_record(ctx.store, ctx.key)  # type: ignore[operator]
    result = job.finish(ctx, "success", held=alloc.lease)
    assert result.remote == {} and "pull" not in alloc.phases and "push" not in result.phases


def test_an_unreachable_remote_is_a_warning_and_the_job_goes_on(tmp_path: Path, store: CountingStore) -> None:
    fleet(tmp_path, store)
    store.fail = {op: "unreachable" for op in ("list", "get", "head", "put")}
    ctx = make_ctx(tmp_path)
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    assert any("unreachable" in w for w in alloc.warnings)
    add_wheel(alloc.job_dir / "uv", "demo-new", "2.0", "NewArchive000001")
    result = job.finish(ctx, "success", held=alloc.lease)
    assert any("unreachable" in w for w in result.warnings) and result.remote["push"]["uv"]["entries_pushed"] == 0


def test_strict_makes_a_remote_failure_fail_the_setup(tmp_path: Path, store: CountingStore) -> None:
    fleet(tmp_path, store)
    store.fail = {"list": "forbidden"}
    ctx = make_ctx(tmp_path, strict=True)
    pinned(ctx)
    with pytest.raises(RemoteError, match="forbidden"):
        job.setup(ctx, in_process=True)
    assert not ctx.store.job_dir(ctx.key).exists()  # a failed setup leaves nothing behind


def test_a_remote_that_cannot_be_opened_is_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(ctx: job.Context, timeout: float) -> Any:
        raise RemoteError("remote s3://fleet/team: cannot be set up: bad region", kind="config")

    monkeypatch.setattr(remote, "_open", refuse)
    ctx = make_ctx(tmp_path)
    pinned(ctx)
    alloc = job.setup(ctx, in_process=True)
    assert alloc.warnings == ["remote pull skipped: remote s3://fleet/team: cannot be set up: bad region; the job "
                              "goes on without it"]
    job.finish(ctx, "success", held=alloc.lease)


def test_a_busy_writer_lock_leaves_the_pulled_entries_out_within_the_budget(tmp_path: Path,
                                                                           store: CountingStore) -> None:
    fleet(tmp_path, store)
    ctx = make_ctx(tmp_path, remote_pull_budget="1s")
    pinned(ctx)
    held = osapi.try_lock(ctx.store.write_lock("uv"))  # a long merge of another job
    assert held is not None
    with held:
        alloc = job.setup(ctx, in_process=True)
    assert any("not installed" in w and "timed out" in w for w in alloc.warnings), alloc.warnings
    assert not (ctx.store.shared_cache("uv") / WHEELS / "demo-alpha").exists()
    job.finish(ctx, "success", held=alloc.lease)


# ---------------------------------------------------------------------------------------------------
# Which files a job's needs are read from: one rule, for pulling now and seeding next.


def test_detection_prefers_lock_files_to_the_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["httpx"]\n')
    (tmp_path / "requirements-dev.txt").write_text("pytest\n")
    assert keyfiles.detected(tmp_path) == (*keyfiles.AUTO_PATTERNS, "pyproject.toml")
    assert keyfiles.for_job((), tmp_path).packages == frozenset({"httpx", "pytest"})
    (tmp_path / "uv.lock").write_text('version = 1\n\n[[package]]\nname = "httpx"\nversion = "0.27.0"\n')
    assert keyfiles.detected(tmp_path) == keyfiles.AUTO_PATTERNS
    found = keyfiles.for_job((), tmp_path)
    assert {p.name for p in found.files} == {"uv.lock", "requirements-dev.txt"}
    assert keyfiles.for_job(("requirements-dev.txt",), tmp_path).files == (tmp_path / "requirements-dev.txt",)
    os.mkdir(tmp_path / "sub")
    assert keyfiles.for_job((), tmp_path / "sub").files == ()  # the top of the workspace only


def test_the_groups_a_cache_holds_are_listed_without_opening_a_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    add_wheel(cache, "demo-alpha", "1.0.0", "AlphaArchive0001")
    assert UvRemote({}, buckets=BUCKETS).groups(cache) == [f"{WHEELS}/demo-alpha/1.0.0-py3-none-any"]
    assert UvRemote({}, buckets=BUCKETS).groups(tmp_path / "missing") == []
    assert layout.ENTRIES.startswith(layout.LAYOUT)


def test_what_the_job_added_but_the_fleet_has_is_not_sent_again(tmp_path: Path, store: CountingStore) -> None:
    """A job without key files pulls nothing, so what it downloads is new locally, yet on the remote."""
    fleet(tmp_path, store)
    blobs_before = [k for k in objects(store) if k.startswith(layout.BLOBS)]
    ctx = make_ctx(tmp_path)
    alloc = job.setup(ctx, in_process=True)
    add_wheel(alloc.job_dir / "uv", "demo-alpha", "1.0.0", "AlphaLocalCopy01", requires=("demo-beta>=1",))
    result = job.finish(ctx, "success", held=alloc.lease)
    pushed = result.remote["push"]["uv"]
    assert (pushed["entries_pushed"], pushed["entries_present"], pushed["bytes"]) == (0, 2, 0)
    assert [k for k in objects(store) if k.startswith(layout.BLOBS)] == blobs_before
