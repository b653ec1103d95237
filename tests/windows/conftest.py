"""Fixtures for the Windows tier (Wine): the lab, a warm wineserver, the local wheel index."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest

from ci_cache_index import IndexServer

from .winlab import Lab, find_lab, run_windows, sync_ci_cache, wine_session

# Lines the tier prints at the end of the run (scenario counts and timings), whatever the outcome.
REPORT: list[str] = []


@pytest.fixture(scope="session")
def wine_lab() -> Iterator[Lab]:
    """The lab built by scripts/setup-wine.sh, with a fresh ci_cache copy and a wineserver kept up."""
    found, reason = find_lab()
    if found is None:
        pytest.skip(reason)
    # One lab serves every checkout on this machine (worktrees included): a run holds it whole, so
    # that no other run syncs its own ci_cache into the lab while this one tests it.
    with open(found.root / ".tier.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        sync_ci_cache(found)
        with wine_session(found):
            warm = run_windows([found.uv_exe, "--version"], the_lab=found, timeout=300)
            if warm.returncode != 0:
                pytest.fail(f"uv.exe does not start under Wine (exit {warm.returncode}): {warm.stderr.strip()}")
            yield found


@pytest.fixture(scope="session")
def wheel_index(wine_lab: Lab) -> Iterator[IndexServer]:
    """The lab's win_amd64/cp313 wheels, served on 127.0.0.1 (uv.exe under Wine reaches it there)."""
    with IndexServer(wine_lab.index_dir) as server:
        yield server


@pytest.fixture(scope="session")
def tier_report() -> list[str]:
    """Append a line here to have it printed in the run's closing summary."""
    return REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("Windows tier (Wine)")
        for line in REPORT:
            terminalreporter.write_line(line)
