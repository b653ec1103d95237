"""The Jenkins shared library's ciCache step, run by a Groovy harness against the real ci-cache CLI.

The harness (tests/jenkins/harness.groovy) mocks the pipeline steps and really executes `sh` and, through a
model of cmd.exe and the C runtime, `bat`. It needs groovy and java: scripts/setup-groovy.sh installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.wrappers]

REPO = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO / "tests" / "jenkins"
VARS_DIR = REPO / "jenkins" / "vars"

# Every case the harness runs; a case missing from its output fails here too.
CASES = [
    "sh: the block runs with the env of its own job cache",
    "sh: a failing block still runs finish --status FAILURE, and its exception propagates",
    "sh: finish gets the build result and an abort as Jenkins words them",
    "sh: two blocks at once (parallel branches of one build) get two allocations",
    "sh: options map to CLI flags (python -m ci_cache, job)",
    "the remote options map to the CLI flags of the same name",
    "bat: a Windows agent runs the CLI through bat with Windows quoting",
    "bat: quoting round-trips any argument through the cmd and C runtime model",
    "missing ci-cache gives a clear error and runs neither the block nor finish",
    "install: makes a fresh venv in WORKSPACE_TMP, pip-installs the requirement and runs ci-cache from it",
    "a busy job id fails the step with ci-cache's own error; the block does not run, nothing is finished",
    "finish's exit code is the step's: non-zero fails the build (unless the block failed), zero never does",
    "a bad option value stops at setup with a clear error; an unknown option before any step",
    "CPS rules: no step in a @NonCPS method, no closure in CPS code but the withEnv block",
]


_CI_PREFIXES = ("CI_", "JENKINS_", "HUDSON_", "BUILD_", "GITHUB_", "GITLAB_", "RUNNER_", "UV_", "PIP_")
_CI_NAMES = frozenset({"CI", "EXECUTOR_NUMBER", "NODE_NAME", "WORKSPACE", "JOB_NAME", "VIRTUAL_ENV"})


def _is_ci_var(name: str) -> bool:
    return name.upper() in _CI_NAMES or name.upper().startswith(_CI_PREFIXES)


def _java_home() -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    # .../jvm/<jdk>/bin/java -> .../jvm/<jdk>
    return str(Path(os.path.realpath(java)).parent.parent)


class HarnessRun:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.results: dict[str, str] = {}
        # The harness's closing line, "N passed, M failed": counts cases this file may not know of.
        summary = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.MULTILINE)
        self.total = int(summary.group(1)) + int(summary.group(2)) if summary else -1
        # Case names contain ": " themselves, so match the known names rather than split the line.
        for line in stdout.splitlines():
            for case in CASES:
                if line == f"ok - {case}":
                    self.results[case] = "ok"
                elif line.startswith(f"not ok - {case}: "):
                    self.results[case] = line.removeprefix(f"not ok - {case}: ") or "failed"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> HarnessRun:
    groovy = shutil.which("groovy")
    java_home = _java_home()
    if groovy is None or java_home is None:
        pytest.skip("groovy/java not found: run scripts/setup-groovy.sh (installs Debian's groovy and a JRE)")
    base = tmp_path_factory.mktemp("jenkins")
    root = base / "root"
    work = base / "work"
    root.mkdir()
    work.mkdir()
    home = base / "home"
    home.mkdir()
    # This fixture outlives the per-test clean env, so it drops CI variables itself: the harness sets
    # the Jenkins ones it wants for each fake build.
    env = {k: v for k, v in os.environ.items() if not _is_ci_var(k)}
    env["HOME"] = str(home)
    # The interpreter running the tests has ci-cache installed beside it.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CI_CACHE_ROOT"] = str(root)
    env["JAVA_HOME"] = java_home
    proc = subprocess.run(
        [
            groovy,
            "-cp",
            str(HARNESS_DIR),
            str(HARNESS_DIR / "harness.groovy"),
            str(VARS_DIR),
            str(work),
            sys.executable,
        ],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return HarnessRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("case", CASES)
def test_ci_cache_step(harness: HarnessRun, case: str) -> None:
    if case not in harness.results:
        pytest.fail(
            f"the harness did not report this case (exit {harness.returncode}):\n"
            f"{harness.stdout}\n{harness.stderr[-4000:]}"
        )
    assert harness.results[case] == "ok", f"{harness.results[case]}\n--- harness stderr ---\n{harness.stderr[-4000:]}"


def test_harness_reports_all_cases_and_exits_clean(harness: HarnessRun) -> None:
    assert sorted(harness.results) == sorted(CASES)
    assert harness.total == len(CASES), "the harness ran cases that CASES does not list"
    assert harness.returncode == (0 if all(r == "ok" for r in harness.results.values()) else 1)
