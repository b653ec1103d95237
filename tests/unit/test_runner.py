"""ci_cache.runner with real child processes: exit codes, signals, the command's PATH, output, and retries.

Every test starts processes (marked `spawns`); the commands are short Python scripts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache import retry, runner
from ci_cache.config import RetryConfig
from ci_cache.errors import CommandNotFound

pytestmark = pytest.mark.spawns

FAST = RetryConfig(attempts=3, backoff=0.01, max_backoff=0.02)
ENV = {"PATH": os.environ.get("PATH", "")}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def flaky(tmp_path: Path, failures: int, message: str = "error: failed to rename file (os error 32)") -> list[str]:
    """A command that fails `failures` times with `message` on stderr, then succeeds."""
    counter = tmp_path / "count"
    return python(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"if n < {failures}: print({message!r}, file=sys.stderr); sys.exit(2)\n"
        "print('done')\n"
    )


def test_the_exit_code_passes_through_untouched() -> None:
    assert runner.run(python("import sys; sys.exit(42)"), ENV, retry=None).exit_code == 42
    outcome = runner.run(python("pass"), ENV, retry=None)
    assert (outcome.exit_code, outcome.attempts, outcome.retries) == (0, 1, [])
    assert outcome.seconds > 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_child_killed_by_a_signal_gives_the_shells_code() -> None:
    code = f"import os, signal; os.kill(os.getpid(), {int(signal.SIGTERM)})"
    assert runner.run(python(code), ENV, retry=None).exit_code == 128 + signal.SIGTERM


def test_a_missing_command_is_command_not_found_with_exit_127() -> None:
    with pytest.raises(CommandNotFound) as info:
        runner.run(["no-such-command-ci-cache"], ENV, retry=None)
    assert info.value.exit_code == 127 and "no-such-command-ci-cache" in str(info.value)


def test_the_command_is_found_on_the_jobs_path_not_ours(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "job-only-tool"
    tool.write_text("#!/bin/sh\nexit 5\n")
    tool.chmod(0o755)
    assert runner.run(["job-only-tool"], {"PATH": str(bin_dir)}, retry=None).exit_code == 5


def test_output_streams_through_with_and_without_capture(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = python("import sys; print('to stdout'); print('to stderr', file=sys.stderr)")
    runner.run(code, ENV, retry=None)
    assert capfd.readouterr() == ("to stdout\n", "to stderr\n")
    runner.run(code, ENV, retry=retry.Policy.from_config(FAST))  # captured for the retry check, and teed
    assert capfd.readouterr() == ("to stdout\n", "to stderr\n")


def test_a_transient_cache_error_is_retried_until_it_passes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    outcome = runner.run(flaky(tmp_path, 2), ENV, retry=retry.Policy.from_config(FAST))
    assert (outcome.exit_code, outcome.attempts) == (0, 3)
    assert outcome.retries == ["os error 32", "os error 32"]
    err = capfd.readouterr().err
    assert "attempt 1 of 3 failed on a transient cache error (os error 32); retrying in" in err


def test_retries_stop_at_the_attempts_and_the_last_exit_code_stands(tmp_path: Path) -> None:
    outcome = runner.run(flaky(tmp_path, 5), ENV, retry=retry.Policy.from_config(FAST))
    assert (outcome.exit_code, outcome.attempts, len(outcome.retries)) == (2, 3, 2)


def test_other_failures_and_no_policy_are_never_retried(tmp_path: Path) -> None:
    outcome = runner.run(flaky(tmp_path, 1, "SyntaxError: nope"), ENV, retry=retry.Policy.from_config(FAST))
    assert (outcome.exit_code, outcome.attempts, outcome.retries) == (2, 1, [])
    (tmp_path / "count").unlink()
    outcome = runner.run(flaky(tmp_path, 1), ENV, retry=None)
    assert (outcome.exit_code, outcome.attempts) == (2, 1)


def test_each_attempt_runs_inside_around_attempt(tmp_path: Path) -> None:
    entered: list[str] = []

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        entered.append("in")
        yield
        entered.append("out")

    runner.run(flaky(tmp_path, 1), ENV, retry=retry.Policy.from_config(FAST), around_attempt=around)
    assert entered == ["in", "out", "in", "out"]


def test_for_command_retries_cache_commands_unless_told_otherwise() -> None:
    config = RetryConfig()
    assert retry.for_command(config, ["uv", "pip", "install"]) is not None
    assert retry.for_command(config, ["make"]) is None
    assert retry.for_command(config, ["make"], choice=True) is not None
    assert retry.for_command(config, ["uv"], choice=False) is None
    assert sorted(retry.CACHE_COMMANDS) == ["pip", "pip3", "uv", "uvx"]  # the built-in tools' commands
