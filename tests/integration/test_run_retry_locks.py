"""`run`: retries of transient cache errors, shared-mode locking and its timeout, the PATH shims."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.uvjobs import Lab

pytestmark = pytest.mark.integration

TRANSIENT = ("error: Failed to persist temporary file to C:\\Users\\ci\\AppData\\Local\\uv\\cache\\simple-v16\\"
             "pypi\\pip.rkyv: Access is denied. (os error 5)")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path, "http://127.0.0.1:9/simple")


def _flaky_tool(folder: Path, name: str, failures: int, message: str) -> Path:
    """A stand-in for uv that fails `failures` times with `message`, then succeeds."""
    folder.mkdir(parents=True, exist_ok=True)
    counter = folder / f"{name}.count"
    script = folder / name
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        from pathlib import Path
        counter = Path({str(counter)!r})
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n < {failures}:
            print({message!r}, file=sys.stderr)
            sys.exit(2)
        print("installed")
        """))
    script.chmod(0o755)
    return counter


def test_transient_cache_errors_are_retried_until_success(lab: Lab) -> None:
    bin_dir = lab.tmp / "bin"
    counter = _flaky_tool(bin_dir, "uv", 2, TRANSIENT)
    env = lab.env(CI_CACHE_RETRY_BACKOFF="0.05s", PATH=os.pathsep.join([str(bin_dir), lab.env()["PATH"]]))
    summary = lab.tmp / "s.json"
    proc = lab.cli("run", "--job", "flaky", "--mode", "isolated", "--summary-json", str(summary), "--",
                   "uv", "pip", "install", "x", env=env)
    assert proc.returncode == 0, proc.stderr
    assert counter.read_text() == "3"
    assert "installed" in proc.stdout
    assert "retrying" in proc.stderr and "Failed to persist temporary file" in proc.stderr
    import json

    data = json.loads(summary.read_text())
    assert data["attempts"] == 3
    assert data["retries"] == ["os error 5", "os error 5"]
    assert "2 retries on transient cache errors" in proc.stderr


def test_retries_stop_at_the_configured_attempts(lab: Lab) -> None:
    bin_dir = lab.tmp / "bin"
    counter = _flaky_tool(bin_dir, "uv", 10, "The process cannot access the file because it is being used by "
                          "another process. (os error 32)")
    env = lab.env(CI_CACHE_RETRY_BACKOFF="0.01s", CI_CACHE_RETRY_ATTEMPTS="4",
                  PATH=os.pathsep.join([str(bin_dir), lab.env()["PATH"]]))
    proc = lab.cli("run", "--job", "flaky", "--", "uv", "sync", env=env)
    assert proc.returncode == 2
    assert counter.read_text() == "4"


def test_a_failing_test_command_is_not_retried(lab: Lab) -> None:
    bin_dir = lab.tmp / "bin"
    # Even with the signature in its output, a command that is not a cache tool runs once.
    counter = _flaky_tool(bin_dir, "pytest", 1, "AssertionError: Access is denied (os error 5) expected")
    env = lab.env(CI_CACHE_RETRY_BACKOFF="0.01s", PATH=os.pathsep.join([str(bin_dir), lab.env()["PATH"]]))
    proc = lab.cli("run", "--job", "tests", "--", "pytest", env=env)
    assert proc.returncode == 2
    assert counter.read_text() == "1"
    # ... and a cache tool's ordinary failure is not retried either.
    counter = _flaky_tool(bin_dir, "uv", 1, "error: No solution found when resolving dependencies")
    proc = lab.cli("run", "--job", "unsat", "--", "uv", "pip", "install", "nope", env=env)
    assert proc.returncode == 2
    assert counter.read_text() == "1"


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""\
        import sys, time
        from pathlib import Path
        from ci_cache import osapi
        handle = osapi.try_lock(Path({str(path)!r}))
        print("held" if handle else "busy", flush=True)
        time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_shared_mode_lock_timeout_is_a_clear_error_with_its_own_exit_code(lab: Lab) -> None:
    holder = _hold_lock(lab.root / "shared" / "uv.write.lock")
    try:
        started = time.monotonic()
        proc = lab.cli("run", "--job", "waiter", "--mode", "shared", "--", sys.executable, "-c", "print('ran')",
                       env=lab.env(CI_CACHE_LOCK_TIMEOUT="1s"))
        assert time.monotonic() - started < 60
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 3
    assert "waiting for lock" in proc.stderr
    assert "timed out after 1s waiting for lock" in proc.stderr and "uv.write.lock" in proc.stderr
    assert "ran" not in proc.stdout
    assert "Traceback" not in proc.stderr


def test_shared_mode_run_holds_the_lock_for_the_command(lab: Lab) -> None:
    code = ("from ci_cache import osapi; from pathlib import Path; import os;"
            "p = Path(os.environ['CI_CACHE_ROOT'], 'shared', 'uv.write.lock');"
            "print('free' if osapi.try_lock(p) else 'held')")
    proc = lab.cli("run", "--job", "holder", "--mode", "shared", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    # flock locks are per open file: our own process holding it means a fresh handle cannot take it.
    assert proc.stdout.strip() == "held"


def test_setup_in_shared_mode_puts_lock_taking_shims_on_path(lab: Lab) -> None:
    env = lab.env(CI_CACHE_JOB="shimmed", CI_CACHE_LOCK_TIMEOUT="1s")
    setup = lab.cli("setup", "--mode", "shared", "--format", "bash", env=env)
    assert setup.returncode == 0, setup.stderr
    script = f"{setup.stdout}\nuv --version\n"
    ok = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("uv ")
    holder = _hold_lock(lab.root / "shared" / "uv.write.lock")
    try:
        blocked = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 3
    assert "timed out after 1s waiting for lock" in blocked.stderr
    assert lab.cli("finish", env=env).returncode == 0
