"""ci_cache.pool: finished job caches kept for the next job, by rename only; bounded in number and age."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ci_cache import osapi, pool
from ci_cache.store import Store


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osapi, "start_background_delete", lambda path, env=None: False)


def cache_with(tmp_path: Path, name: str, content: str) -> Path:
    cache = tmp_path / "root" / "jobs" / name / "uv"
    cache.mkdir(parents=True)
    (cache / "marker").write_text(content)
    return cache


def test_scope_tags_say_full_or_hash_the_names_in_any_order() -> None:
    assert pool.scope_tag(None) == pool.FULL
    assert pool.scope_tag(frozenset({"a", "b"})) == pool.scope_tag(frozenset({"b", "a"})) != pool.scope_tag(
        frozenset({"a"}))
    assert pool.scope_tag(frozenset({"a"})).startswith("k") and "." not in pool.scope_tag(frozenset({"a"}))


def test_a_cache_given_back_is_claimed_whole_by_a_job_of_its_scope_only(store: Store, tmp_path: Path) -> None:
    assert pool.give_back(store, "uv", "full", cache_with(tmp_path, "j1", "one"), size=4)
    assert not (tmp_path / "root" / "jobs" / "j1" / "uv").exists()
    target = tmp_path / "root" / "jobs" / "j2" / "uv"
    target.parent.mkdir(parents=True)
    assert not pool.claim(store, "uv", "kdeadbeef0000", target, max_age=3600)
    assert pool.claim(store, "uv", "full", target, max_age=3600)
    assert (target / "marker").read_text() == "one"
    assert pool.entries(store, "uv") == []
    assert not pool.claim(store, "uv", "full", tmp_path / "elsewhere", max_age=3600)  # each is taken once


def test_the_newest_is_claimed_first_and_the_pool_keeps_its_size(store: Store, tmp_path: Path) -> None:
    for i in range(4):
        assert pool.give_back(store, "uv", "full", cache_with(tmp_path, f"j{i}", str(i)), size=3)
        time.sleep(0.002)
    kept = pool.entries(store, "uv")
    assert len(kept) == 3
    target = tmp_path / "taken"
    assert pool.claim(store, "uv", "full", target, max_age=3600)
    assert (target / "marker").read_text() == "3"


def test_size_zero_keeps_nothing(store: Store, tmp_path: Path) -> None:
    cache = cache_with(tmp_path, "j1", "one")
    assert not pool.give_back(store, "uv", "full", cache, size=0)
    assert cache.is_dir() and pool.entries(store, "uv") == []


def test_gc_reclaims_a_cache_past_its_age_and_then_the_trash(store: Store, tmp_path: Path) -> None:
    assert pool.give_back(store, "uv", "full", cache_with(tmp_path, "j1", "one"), size=4)
    (entry,) = pool.entries(store, "uv")
    later = time.time() + 7200
    assert pool.reclaim(store, max_age=7200 * 2, now=later) == []
    assert pool.reclaim(store, max_age=3600, now=later) == [str(entry.path)]
    assert list(pool.pool_dir(store, "uv").iterdir()) == []
    # What a detached delete that died left: reclaimed once it has been quiet for a minute.
    trash = pool.pool_dir(store, "uv") / ".tmp-cicache-123-abcdef0123"
    (trash / "x").mkdir(parents=True)
    assert pool.reclaim(store, max_age=3600, now=time.time()) == []
    assert pool.reclaim(store, max_age=3600, now=time.time() + 120) == [str(trash)]
    assert not trash.exists()


def test_a_claim_skips_entries_past_their_age(store: Store, tmp_path: Path) -> None:
    folder = pool.pool_dir(store, "uv")
    folder.mkdir(parents=True)
    old = folder / f"full.{int((time.time() - 7200) * 1e9):x}.abcdef"
    old.mkdir()
    assert not pool.claim(store, "uv", "full", tmp_path / "t", max_age=3600)
    assert old.is_dir()


def test_empty_discards_every_cache_of_a_tool(store: Store, tmp_path: Path) -> None:
    for i in range(2):
        pool.give_back(store, "uv", "full", cache_with(tmp_path, f"j{i}", str(i)), size=4)
    pool.give_back(store, "pip", "full", cache_with(tmp_path, "p", "p"), size=4)
    assert pool.empty(store, "uv") == 2
    assert pool.entries(store, "uv") == [] and len(pool.entries(store, "pip")) == 1


def test_names_that_are_not_entries_are_left_alone(store: Store) -> None:
    folder = pool.pool_dir(store, "uv")
    folder.mkdir(parents=True)
    for name in ("README", "full", "full.zz", ".tmp-cicache-1-ab"):
        (folder / name).mkdir()
    assert pool.entries(store, "uv") == []
    assert sorted(os.listdir(folder)) == sorted(["README", "full", "full.zz", ".tmp-cicache-1-ab"])
