"""Project-wide test fixtures: no CI variable leaks in, no test touches the real home dir.

Every test gets an environment with every CI variable removed and HOME (and its Windows and XDG
equivalents) pointing at a temp dir. Unit tests (tests/unit) are also guarded, through a Python
audit hook: spawning a process fails unless the test is marked `@pytest.mark.spawns`, and writing
below the real home dir always fails. A violation raises where it happens and, in case the code
under test swallows that error, fails the test at teardown anyway.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
UNIT_DIR = TESTS_DIR / "unit"

# Variables through which a CI system, a tool or a venv could change what the code under test does.
CI_VAR_PREFIXES = (
    "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "HUDSON_", "BUILD_", "RUNNER_", "ACTIONS_", "UV_", "PIP_",
    "CHANGE_", "TEAMCITY", "BUILDKITE", "TRAVIS", "CIRCLE", "APPVEYOR", "BITBUCKET_", "DRONE", "AGENT_",
    "SYSTEM_",
)
CI_VAR_NAMES = frozenset({
    "CI", "TF_BUILD", "EXECUTOR_NUMBER", "NODE_NAME", "NODE_LABELS", "WORKSPACE", "WORKSPACE_TMP",
    "JOB_NAME", "JOB_BASE_NAME", "JOB_URL", "BRANCH_NAME", "GIT_BRANCH", "GIT_COMMIT", "VIRTUAL_ENV",
})
HOME_VARS = ("HOME", "USERPROFILE")
# Per-user folders that tools derive from the environment rather than from HOME.
USER_DIR_VARS = {"XDG_CACHE_HOME": "cache", "XDG_CONFIG_HOME": "config", "XDG_DATA_HOME": "data",
                 "LOCALAPPDATA": "AppData/Local", "APPDATA": "AppData/Roaming"}

# Audit events that start a process.
SPAWN_EVENTS = frozenset({
    "subprocess.Popen", "os.posix_spawn", "os.spawn", "os.exec", "os.fork", "os.forkpty", "os.system",
    "os.startfile", "_winapi.CreateProcess", "pty.spawn",
})
# Audit events that change the filesystem, with the index of the path they change.
WRITE_EVENTS = {
    "os.mkdir": 0, "os.remove": 0, "os.rmdir": 0, "os.chmod": 0, "os.chown": 0, "os.utime": 0,
    "os.truncate": 0, "shutil.rmtree": 0, "os.rename": 1, "os.link": 1, "os.symlink": 1,
    "shutil.copyfile": 1, "shutil.copytree": 1, "shutil.move": 1,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class AccidentalSideEffect(AssertionError):
    """A unit test spawned a process or wrote below the real home dir."""


def _real_homes() -> tuple[str, ...]:
    homes = {os.path.expanduser("~"), os.environ.get("USERPROFILE", "")}
    if sys.platform != "win32":
        import pwd

        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    # A home of `/` (some containers) would cover everything: leave it out.
    return tuple(sorted({os.path.realpath(h) for h in homes if h and len(Path(h).resolve().parts) > 1}))


REAL_HOMES = _real_homes()


@dataclass
class SideEffectGuard:
    """What the audit hook checks while a unit test runs; `violations` lists what it caught."""

    real_homes: tuple[str, ...] = REAL_HOMES
    active: bool = False
    allow_spawn: bool = False
    allowed_roots: tuple[str, ...] = ()
    violations: list[str] = field(default_factory=list)

    def _forbidden_path(self, raw: object) -> str | None:
        if not isinstance(raw, str | bytes | os.PathLike):
            return None
        path = os.path.abspath(os.fsdecode(raw))
        if not any(path == h or path.startswith(h + os.sep) for h in self.real_homes):
            return None
        if "__pycache__" in path or any(path.startswith(root + os.sep) for root in self.allowed_roots):
            return None
        return path

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.active:
            return
        problem = None
        if event in SPAWN_EVENTS and not self.allow_spawn:
            problem = f"a unit test started a process ({event}); mark it @pytest.mark.spawns if it must"
        elif event == "open" and len(args) >= 3:
            mode, flags = args[1], args[2]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            path = self._forbidden_path(args[0]) if writes else None
            if path:
                problem = f"a unit test wrote {path}, below the real home dir"
        elif event in WRITE_EVENTS and len(args) > WRITE_EVENTS[event]:
            path = self._forbidden_path(args[WRITE_EVENTS[event]])
            if path:
                problem = f"a unit test changed {path} ({event}), below the real home dir"
        if problem:
            self.violations.append(problem)
            raise AccidentalSideEffect(problem)


GUARD = SideEffectGuard()


def pytest_configure(config: pytest.Config) -> None:
    """Install the audit hook (markers, `spawns` included, are registered in pyproject.toml)."""
    if not getattr(sys, "_ci_cache_guard_installed", False):
        # Audit hooks cannot be removed: install one per process, and switch it per test.
        sys.addaudithook(GUARD.hook)
        sys._ci_cache_guard_installed = True  # type: ignore[attr-defined]


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


def _is_ci_var(name: str) -> bool:
    upper = name.upper()
    return upper in CI_VAR_NAMES or upper.startswith(CI_VAR_PREFIXES)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No CI variable from the machine running the tests, and a fake home dir; returns that home."""
    for name in list(os.environ):
        if _is_ci_var(name):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    for name in HOME_VARS:
        monkeypatch.setenv(name, str(home))
    for name, sub in USER_DIR_VARS.items():
        monkeypatch.setenv(name, str(home / sub))
    return home


def _is_unit_test(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(UNIT_DIR)


@pytest.fixture(autouse=True)
def side_effect_guard(request: pytest.FixtureRequest, clean_env: Path) -> Iterator[SideEffectGuard]:
    """Unit tests only: fail on an accidental process spawn or a write below the real home dir."""
    if not _is_unit_test(request.node):
        yield GUARD
        return
    GUARD.allow_spawn = request.node.get_closest_marker("spawns") is not None
    roots = {str(request.config.rootpath), sys.prefix, sys.base_prefix, tempfile.gettempdir(), str(clean_env)}
    GUARD.allowed_roots = tuple(sorted(os.path.realpath(r) for r in roots))
    GUARD.violations.clear()
    GUARD.active = True
    try:
        yield GUARD
    finally:
        GUARD.active = False
    caught = list(GUARD.violations)
    GUARD.violations.clear()
    # A violation that made the test fail is reported there; one the code swallowed is reported here.
    if caught and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail("; ".join(caught), pytrace=False)
