"""gc and verify look at folders that other processes change meanwhile: an entry that vanishes between
the listing and its stat is no error (found by the soak: `ci-cache gc` died on a job dir's trash that its
background delete had just removed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ci_cache import fsops, gc, osapi
from ci_cache.store import Store
from ci_cache.tools.uv import UvTool


class Listing(list[os.DirEntry[str]]):
    """A directory listing read in full, usable as os.scandir's result is."""

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def _vanishing_after_listing(monkeypatch: pytest.MonkeyPatch, doomed: Path) -> None:
    """os.scandir lists `doomed`, which is deleted before anyone can stat it."""
    real = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Listing:
        with real(path) as it:
            listing = Listing(it)
        if Path(path) == doomed.parent and doomed.exists():
            monkeypatch.setattr(os, "scandir", real)
            fsops.rmtree(doomed)
            monkeypatch.setattr(os, "scandir", scandir)
        return listing

    monkeypatch.setattr(os, "scandir", scandir)


def _vanishing_after_listdir(monkeypatch: pytest.MonkeyPatch, doomed: Path) -> None:
    """os.listdir names `doomed`, which is deleted before anyone can stat it."""
    real = os.listdir

    def listdir(path: str | os.PathLike[str]) -> list[str]:
        names = real(path)
        if Path(path) == doomed.parent and doomed.exists():
            fsops.rmtree(doomed)
        return names

    monkeypatch.setattr(os, "listdir", listdir)


def test_trash_deleted_meanwhile_is_skipped(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    trash = store.jobs_dir / f"{fsops.TEMP_PREFIX}123-abc"
    (trash / "uv").mkdir(parents=True)
    _vanishing_after_listdir(monkeypatch, trash)
    assert gc.reclaim_trash(store, now=1e12) == []
    assert not trash.exists()


def test_a_temp_dir_renamed_into_place_meanwhile_is_no_leftover(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = store.shared_cache("uv")
    uv_temp = cache / "archive-v0" / ".tmpAbCdEf"
    uv_temp.mkdir(parents=True)
    real_lstat = os.lstat

    def lstat(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        if Path(path) == uv_temp and uv_temp.exists():
            os.rename(uv_temp, cache / "archive-v0" / "AbCdEf")  # uv renames its temp dir into place
        return real_lstat(path)

    monkeypatch.setattr(os, "lstat", lstat)
    with gc.leftover_temp_dirs(cache, grace=0, now=1e12, own_lock=UvTool.own_lock) as leftovers:
        assert leftovers == []
    assert (cache / "archive-v0" / "AbCdEf").is_dir()


def test_a_temp_dir_of_a_running_uv_is_kept_however_old(store: Store) -> None:
    """uv holds its root lock shared while it runs, and writes into `.tmp*` dirs at the cache root (its
    interpreter probe, for one): gc must not take them from under it, even past the grace period."""
    cache = store.shared_cache("uv")
    uv_temp = cache / ".tmpRunning"
    (uv_temp / "python").mkdir(parents=True)
    os.utime(uv_temp, (1, 1))
    running_uv = osapi.try_lock(cache / ".lock", shared=True)
    assert running_uv is not None
    try:
        assert gc.reclaim_temp_dirs(store, grace=3600, now=1e12) == []
        assert uv_temp.is_dir()
    finally:
        running_uv.release()
    assert gc.reclaim_temp_dirs(store, grace=3600, now=1e12) == [str(uv_temp)]
    assert not uv_temp.exists()
