"""A lock guards the file its name names: a lock taken on a file that was deleted (and maybe recreated)
between the open and the lock is let go and taken again on what the name names now (osapi.try_lock, which
is oslock's).

The race: `claim.give_back` releases a lease, then deletes its file. A setup that opened the file just
before the delete locks the deleted file once the lease is released; a third setup then creates a new
file under the same name and locks that. Without the check both would win.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from ci_cache import locks, osapi, oslock

pytestmark = pytest.mark.skipif(osapi.IS_WINDOWS, reason="Windows cannot delete a file that is open")


def _between_open_and_lock(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None], times: int = 1) -> list[int]:
    """Run `action` inside the first `times` lock calls, after the open: the window of the race."""
    real = oslock._lock
    calls: list[int] = []

    def lock(fh: IO[bytes], *, shared: bool) -> None:
        calls.append(os.fstat(fh.fileno()).st_ino)
        if len(calls) <= times:
            action()
        real(fh, shared=shared)

    monkeypatch.setattr(oslock, "_lock", lock)
    return calls


def _inode(path: Path) -> int:
    return os.stat(path).st_ino


def test_a_file_deleted_and_recreated_between_open_and_lock_is_locked_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = tmp_path / "jobs" / "j1.lease"
    lease.parent.mkdir()
    lease.write_bytes(b"")
    first_inode = _inode(lease)
    newcomer: list[osapi.FileLockHandle | None] = []

    def give_back_then_a_newcomer() -> None:
        lease.unlink()  # give_back deletes the file...
        monkeypatch.setattr(oslock, "_lock", real_lock)  # (the newcomer's own lock is a plain one)
        newcomer.append(osapi.try_lock(lease))  # ...and a third setup creates and locks a new one
        monkeypatch.setattr(oslock, "_lock", patched)

    real_lock = oslock._lock
    calls = _between_open_and_lock(monkeypatch, give_back_then_a_newcomer)
    patched = oslock._lock
    handle = osapi.try_lock(lease)
    # The newcomer holds the file the name now names, so the second try finds it taken: one winner.
    assert newcomer[0] is not None and handle is None
    assert calls[0] == first_inode and calls[1] == _inode(lease) != first_inode
    newcomer[0].release()


def test_a_file_deleted_between_open_and_lock_is_created_and_locked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_path = tmp_path / "x.lock"
    lock_path.write_bytes(b"")
    calls = _between_open_and_lock(monkeypatch, lock_path.unlink)
    handle = osapi.try_lock(lock_path)
    assert handle is not None and len(calls) == 2
    # It holds the file the name names, so any other lock of the name is refused.
    assert os.fstat(handle._fh.fileno()).st_ino == _inode(lock_path)
    monkeypatch.undo()
    assert osapi.try_lock(lock_path) is None
    handle.release()
    again = osapi.try_lock(lock_path)
    assert again is not None
    again.release()


def test_the_same_file_is_locked_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _between_open_and_lock(monkeypatch, lambda: None)
    handle = locks.try_lock(tmp_path / "y.lock", shared=True)
    assert handle is not None and len(calls) == 1
    handle.release()


def test_a_released_handle_releases_what_goes_with_it(tmp_path: Path) -> None:
    lease, layout = osapi.try_lock(tmp_path / "a.lease"), osapi.try_lock(tmp_path / "layout.lock", shared=True)
    assert lease is not None and layout is not None
    lease.hold_also(layout)
    assert osapi.try_lock(tmp_path / "layout.lock") is None
    lease.release()
    lease.release()  # twice is harmless
    exclusive = osapi.try_lock(tmp_path / "layout.lock")
    assert exclusive is not None
    exclusive.release()
