"""The pool in a job's life: finish gives a trusted isolated job's uv cache back, the next setup of its scope
refreshes it instead of seeding anew; untrusted jobs, a pruning finish and `pool.size: 0` keep nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ci_cache import config, gc, job, osapi, pool, prune
from ci_cache.providers import JobIdentity
from ci_cache.tools import from_config
from tests.unit.uvcache import ALPHA, make_shared, snapshot

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osapi, "start_bulk_link", lambda sources, target: None)
    monkeypatch.setattr(osapi, "start_background_delete", lambda path, env=None: False)


def make_ctx(root: Path, job_id: str, *, trusted: bool = True, **settings: object) -> job.Context:
    cfg = config.Config.model_validate({"tools": ["uv", "temp"], "mode": "isolated", **settings})
    identity = JobIdentity(provider="local", job_id=job_id, trusted=trusted,
                           trust_reason="local run" if trusted else "fork pull request")
    return job.Context(config=cfg, env={}, cwd=root.parent, windows=False, identity=identity, root=root)


def run_job(root: Path, job_id: str, **settings: object) -> tuple[job.Allocation, job.FinishResult]:
    ctx = make_ctx(root, job_id, trusted=True, **settings)
    alloc = job.setup(ctx, in_process=True)
    return alloc, job.finish(ctx, "success", held=alloc.lease)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_shared(tmp_path / "root" / "shared" / "uv")
    return tmp_path / "root"


def test_the_next_job_refreshes_the_last_ones_cache(root: Path) -> None:
    shared_before = snapshot(root / "shared" / "uv")
    first, done = run_job(root, "build-1")
    assert not first.seeded["uv"]["warm"] and done.pooled == ["uv"]
    assert len(pool.entries(make_ctx(root, "x").store, "uv")) == 1
    assert not first.job_dir.exists()  # the rest of the job dir is gone as before
    second, done = run_job(root, "build-2")
    assert second.seeded["uv"]["warm"] and second.seeded["uv"]["bytes"] == 0
    assert second.seeded["uv"]["kept"] == second.seeded["uv"]["files"] == first.seeded["uv"]["files"]
    assert done.pooled == ["uv"]
    assert snapshot(root / "shared" / "uv") == shared_before


def test_an_untrusted_job_uses_a_warm_cache_but_never_gives_one_back(root: Path) -> None:
    run_job(root, "build-1")
    ctx = make_ctx(root, "fork-1", trusted=False)
    alloc = job.setup(ctx, in_process=True)
    assert alloc.seeded["uv"]["warm"]
    done = job.finish(ctx, "success", held=alloc.lease)
    assert done.pooled == [] and pool.entries(ctx.store, "uv") == []
    assert not alloc.job_dir.exists()


def test_a_job_of_another_scope_seeds_anew(root: Path, tmp_path: Path) -> None:
    run_job(root, "build-1")
    (tmp_path / "requirements.txt").write_text(f"{ALPHA.name}\n")
    ctx = make_ctx(root, "keyed-1", key_files=[str(tmp_path / "requirements.txt")])
    alloc = job.setup(ctx, in_process=True)
    assert not alloc.seeded["uv"]["warm"] and alloc.seeded["uv"]["scope"] == "key files"
    assert len(pool.entries(ctx.store, "uv")) == 1  # the full one stays for a full job
    done = job.finish(ctx, "success", held=alloc.lease)
    assert done.pooled == ["uv"]
    tags = {e.tag for e in pool.entries(ctx.store, "uv")}
    assert tags == {pool.FULL, pool.scope_tag(frozenset({ALPHA.name}))}


def test_size_zero_turns_the_pool_off(root: Path) -> None:
    _, done = run_job(root, "build-1", pool={"size": 0})
    assert done.pooled == [] and not (root / "pool" / "uv").exists()
    second, _ = run_job(root, "build-2")
    assert not second.seeded["uv"]["warm"]


def test_a_prune_that_evicts_empties_the_pool_and_a_pruning_finish_keeps_nothing(root: Path) -> None:
    run_job(root, "build-1")
    ctx = make_ctx(root, "x")
    assert len(pool.entries(ctx.store, "uv")) == 1
    prune.prune_store(ctx.store, from_config(ctx.config), max_size=1, max_age=None, ci=False, env={},
                      lock_timeout=5)
    assert pool.entries(ctx.store, "uv") == []
    _, done = run_job(root, "build-2", prune={"on_finish": True, "max_size": "1"})
    assert "prune" in done.phases and done.pooled == [] and pool.entries(ctx.store, "uv") == []


def test_gc_reclaims_pool_caches_past_their_age(root: Path) -> None:
    run_job(root, "build-1")
    ctx = make_ctx(root, "x")
    report = gc.collect(ctx.store, grace=3600, pool_max_age=3600)
    assert report.reclaimed_pool == [] and len(pool.entries(ctx.store, "uv")) == 1
    report = gc.collect(ctx.store, grace=3600, pool_max_age=0)
    assert len(report.reclaimed_pool) == 1 and pool.entries(ctx.store, "uv") == []
