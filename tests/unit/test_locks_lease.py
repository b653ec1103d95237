"""ci_cache.locks and ci_cache.lease: OS file locks across real processes, and crash detection.

Cross-process semantics need real processes: those tests are marked `spawns`. Every process started
here is killed and reaped by the test that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_cache import lease, locks, osapi
from ci_cache.errors import LockTimeout, StoreError

# Generous: only a bound on a wait for something that must happen, never a timing assertion.
DEADLINE = 60.0

HOLDER = """
import sys
from pathlib import Path
from ci_cache import osapi
handle = osapi.try_lock(Path(sys.argv[1]), shared=sys.argv[2] == "shared")
print("ready" if handle else "busy", flush=True)
sys.stdin.read()  # hold until the test closes our stdin or kills us
"""


@contextlib.contextmanager
def lock_holder(path: Path, *, shared: bool = False) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the OS lock on `path`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "shared" if shared else "exclusive"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def wait_until(condition: Callable[[], bool]) -> bool:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def kill_and_reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    # The holder is our child: reap it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


# ---------------------------------------------------------------------------------------------------
# In one process: shared and exclusive locks on separate handles.


def test_exclusive_lock_excludes_other_handles(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = osapi.try_lock(path)
    assert first is not None
    try:
        assert osapi.try_lock(path) is None
        assert osapi.try_lock(path, shared=True) is None
    finally:
        first.release()
    again = osapi.try_lock(path)
    assert again is not None
    again.release()


def test_shared_locks_coexist_and_exclude_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "cache" / ".lock"
    a = osapi.try_lock(path, shared=True)
    b = osapi.try_lock(path, shared=True)
    assert a is not None and b is not None
    try:
        assert osapi.try_lock(path) is None
    finally:
        a.release()
        b.release()
        b.release()  # releasing twice is harmless


def test_acquire_is_silent_when_the_lock_is_free(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handle, waited = locks.acquire(tmp_path / "free.lock", timeout=5)
    with handle:
        assert waited == 0.0
    assert capsys.readouterr().err == ""


def test_acquire_times_out_on_a_lock_held_by_another_handle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "uv.write.lock"
    held = osapi.try_lock(path)
    assert held is not None
    try:
        with pytest.raises(LockTimeout) as info:
            locks.acquire(path, timeout=0.2, purpose="merge into the shared uv cache")
    finally:
        held.release()
    assert str(path) in str(info.value)
    assert "merge into the shared uv cache" in str(info.value)
    assert "waiting for lock" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# Across processes.


@pytest.mark.spawns
def test_lock_held_by_another_process_times_out_with_exit_code_3(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "uv.write.lock"
    with lock_holder(path):
        with pytest.raises(LockTimeout) as info:
            locks.acquire(path, timeout=0.3, purpose="merge")
        assert info.value.exit_code == 3
        assert str(path) in info.value.message
        assert info.value.hint and "lock_timeout" in info.value.hint
    # The holder is gone: the lock is free again.
    handle, _ = locks.acquire(path, timeout=DEADLINE)
    handle.release()


@pytest.mark.spawns
def test_a_shared_holder_blocks_writers_but_not_readers(tmp_path: Path) -> None:
    path = tmp_path / "cache" / ".lock"
    with lock_holder(path, shared=True):
        reader, _ = locks.acquire(path, timeout=5, shared=True)
        reader.release()
        with pytest.raises(LockTimeout):
            locks.acquire(path, timeout=0.2)


@pytest.mark.spawns
def test_acquire_gets_the_lock_once_the_holder_exits(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with lock_holder(path) as proc:
        assert proc.stdin is not None
        proc.stdin.close()  # the holder reads EOF and exits; the OS drops its lock
        handle, _waited = locks.acquire(path, timeout=DEADLINE)
        handle.release()


@pytest.mark.spawns
def test_lease_is_held_while_the_holder_lives_and_free_after_kill_9(tmp_path: Path) -> None:
    lease_path = tmp_path / "jobs" / "jabc.lease"
    assert not lease.is_held(lease_path)
    pid = lease.start_holder(lease_path, ttl=DEADLINE * 5, env=dict(os.environ))
    try:
        assert osapi.pid_alive(pid)
        assert lease.is_held(lease_path)
        assert lease.is_held(lease_path)  # checking does not take it
    finally:
        kill_and_reap(pid)
    assert wait_until(lambda: not lease.is_held(lease_path))
    assert not osapi.pid_alive(pid)


@pytest.mark.spawns
def test_stop_holder_hands_the_lease_over(tmp_path: Path) -> None:
    lease_path = tmp_path / "jobs" / "jdef.lease"
    pid = lease.start_holder(lease_path, ttl=DEADLINE * 5, env=dict(os.environ))
    try:
        handle = lease.stop_holder(pid, lease_path, timeout=DEADLINE)
        try:
            # We hold it now: another handle sees it held.
            assert lease.is_held(lease_path)
        finally:
            handle.release()
        assert not lease.is_held(lease_path)
    finally:
        kill_and_reap(pid)


@pytest.mark.spawns
def test_start_holder_says_the_lease_is_taken_when_another_process_holds_it(tmp_path: Path) -> None:
    lease_path = tmp_path / "jobs" / "jghi.lease"
    held = lease.take(lease_path, timeout=5)
    try:
        with pytest.raises(lease.LeaseTaken) as info:
            lease.start_holder(lease_path, ttl=DEADLINE, env=dict(os.environ))
        assert str(lease_path) in str(info.value)
    finally:
        held.release()


@pytest.mark.spawns
def test_start_holder_fails_clearly_when_the_holder_cannot_lock_at_all(tmp_path: Path) -> None:
    (tmp_path / "jobs").write_text("a file where the jobs dir should be")
    lease_path = tmp_path / "jobs" / "jghi.lease"
    with pytest.raises(StoreError) as info:
        lease.start_holder(lease_path, ttl=DEADLINE, env=dict(os.environ))
    assert str(lease_path) in str(info.value)
    assert not isinstance(info.value, lease.LeaseTaken)


@pytest.mark.spawns
def test_of_holders_started_at_once_exactly_one_gets_the_lease(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lease_path = tmp_path / "jobs" / "jrace.lease"

    def start() -> int | None:
        try:
            return lease.start_holder(lease_path, ttl=DEADLINE * 5, env=dict(os.environ))
        except lease.LeaseTaken:
            return None

    with ThreadPoolExecutor(4) as pool:
        pids = list(pool.map(lambda _: start(), range(4)))
    winners = [pid for pid in pids if pid is not None]
    try:
        assert len(winners) == 1, pids
    finally:
        for pid in winners:
            kill_and_reap(pid)


@pytest.mark.spawns
def test_the_holder_lets_go_when_its_ttl_runs_out(tmp_path: Path) -> None:
    lease_path = tmp_path / "jobs" / "jttl.lease"
    pid = lease.start_holder(lease_path, ttl=0.2, env=dict(os.environ))
    try:
        assert wait_until(lambda: not lease.is_held(lease_path))
    finally:
        kill_and_reap(pid)


@pytest.mark.spawns
def test_the_holder_does_not_carry_ci_process_tracking_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_popen = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs["env"])
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    real_spawn = getattr(os, "posix_spawnp", None)
    if real_spawn is not None:  # POSIX starts the holder without subprocess (osapi.spawn_detached)
        def spawn_spy(path: str, argv: list[str], env: dict[str, str], **kwargs: Any) -> int:
            seen.update(env)
            return int(real_spawn(path, argv, env, **kwargs))

        monkeypatch.setattr(os, "posix_spawnp", spawn_spy)
    env = {**os.environ, "JENKINS_NODE_COOKIE": "abc", "BUILD_ID": "17", "RUNNER_TRACKING_ID": "x", "KEEP": "1"}
    pid = lease.start_holder(tmp_path / "j.lease", ttl=DEADLINE, env=env)
    kill_and_reap(pid)
    assert "KEEP" in seen
    assert not {"JENKINS_NODE_COOKIE", "BUILD_ID", "RUNNER_TRACKING_ID"} & set(seen)


def test_a_missing_lease_file_is_not_held(tmp_path: Path) -> None:
    assert not lease.is_held(tmp_path / "none.lease")
    assert not osapi.pid_alive(0)
    assert osapi.pid_alive(os.getpid())


# ---------------------------------------------------------------------------------------------------
# The unit-test guard itself (tests/conftest.py): an unmarked unit test cannot start a process.


def test_the_guard_blocks_a_process_spawn_in_an_unmarked_test(side_effect_guard: Any) -> None:
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(AssertionError, match="started a process"):
        os.system("true")
    assert len(side_effect_guard.violations) == 2
    side_effect_guard.violations.clear()  # caught on purpose: do not fail this test at teardown


@pytest.mark.spawns
def test_the_guard_lets_a_marked_test_spawn() -> None:
    done = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ok"
