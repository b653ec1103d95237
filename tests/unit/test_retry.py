"""ci_cache.retry: which outputs are transient cache errors, backoff bounds, which commands qualify.

The transient samples are real uv/Windows output, copied from the user reports in seeds/ (wrapping
and prefixes as the reports show them), plus the Wine and Linux wordings.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ci_cache.config import RetryConfig
from ci_cache.retry import SIGNATURES, Policy, is_cache_command

POLICY = Policy.from_config(RetryConfig())

# A user report: uv 0.5 on a Jenkins node, two jobs sharing the cache (wrapped by uv's error renderer).
PERSIST_WRAPPED = """\
11:09:42 error: Failed to install: pip-24.0-py3-none-any.whl (pip==24.0)
11:09:42   ├─▶ No solution found when resolving: pip
11:09:42   ╰─▶ Failed to persist temporary file to
11:09:42       AppData\\Local\\uv\\cache\\simple-v6\\pypi\\pip.rkyv: Access is denied. (os
11:09:42       error 5)
"""
PERSIST_INTERPRETER = """\
11:09:38   \u00d7 Failed to persist temporary file to
11:09:38   │ AppData\\Local\\uv\\cache\\interpreter-v0\\55968f1457792c80.msgpack: Access is
11:09:38   │ denied. (os error 5)
"""
# A user report: parallel `uv sync` on one machine.
INTERPRETER_OS5 = (
    "  Caused by: Failed to persist temporary file to AppData\\Local\\uv\\cache\\interpreter-v2\\"
    "ae3c819d96baa6b8.msgpack: Access is denied. (os error 5)\n"
)
USED_BY_ANOTHER = (
    "  Caused by: The process cannot access the file because it is being used by another process. (os error 32)\n"
)
RECORD_COPY = (
    "  Caused by: failed to copy file from d:\\code\\experiments\\uv-parallel-issue\\cache\\archive-v0\\"
    "Tn2MVVxErMR6qBVuAcGGi\\comtypes-1.4.9.dist-info\\RECORD to d:\\code\\experiments\\uv-parallel-issue\\"
    "cache\\environments-v2\\hello-8b8d8853a364cdcc\\Lib\\site-packages\\comtypes-1.4.9.dist-info\\RECORD: The "
    "process cannot access the file because it is being used by another process. (os error 32)\n"
)
# A user report: a Jenkins build log.
LOCKED_PORTION = (
    "[2024-04-03T12:12:41.046Z]   Caused by: The process cannot access the file because another process has "
    "locked a portion of the file. (os error 33)\n"
)
# A user report: an antivirus holding a freshly extracted wheel.
RENAME_ARCHIVE = (
    "  Caused by: failed to rename file from \\\\?\\C:\\Users\\[____]\\AppData\\Local\\uv\\cache\\.tmpXU7l5Y to "
    "\\\\?\\C:\\Users\\[____]\\AppData\\Local\\uv\\cache\\archive-v0\\IPIdPmnxfhPlAbb4aByib\n"
    "  Caused by: Access is denied. (os error 5)\n"
)
WINE_SHARING = "error: Failed to read `C:\\cache\\simple-v27\\pypi\\idna.rkyv`\n  Caused by: Sharing violation.\n"
LINUX_EACCES = "error: failed to remove directory `/cache/.tmpAbC/x`: Permission denied (os error 13)\n"
PYTHON_WINERROR = "PermissionError: [WinError 32] The process cannot access the file because it is being used\n"

TRANSIENT = {
    "persist-wrapped": PERSIST_WRAPPED,
    "persist-interpreter": PERSIST_INTERPRETER,
    "interpreter-os5": INTERPRETER_OS5,
    "used-by-another": USED_BY_ANOTHER,
    "record-copy": RECORD_COPY,
    "locked-portion": LOCKED_PORTION,
    "rename-archive": RENAME_ARCHIVE,
    "wine-sharing": WINE_SHARING,
    "linux-eacces": LINUX_EACCES,
    "python-winerror": PYTHON_WINERROR,
}

# Failures that another attempt would not fix.
NOT_TRANSIENT = {
    # A user report: a real resolution failure.
    "no-solution": (
        "  \u00d7 No solution found when resolving dependencies:\n"
        "  ╰─▶ Because only the following versions of tensorflow are available:\n"
        "          tensorflow<=2.5.3\n"
        "          tensorflow>=2.6.0,<=2.6.5\n"
    ),
    "test-failure": (
        "FAILED tests/test_api.py::test_login - AssertionError: assert 401 == 200\n"
        "========================= 1 failed, 41 passed in 3.21s =========================\n"
    ),
    "missing-package": "error: Package `nonexistent-pkg` not found in registry\n",
    "python-permission": "PermissionError: [Errno 13] Permission denied: '/etc/shadow'\n",
    "syntax-error": "  File \"setup.py\", line 3\n    print 'hi'\n          ^\nSyntaxError: Missing parentheses\n",
    "network": "error: Request failed after 3 retries\n  Caused by: error sending request: Connection refused\n",
    "empty": "",
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_real_transient_outputs_are_detected(name: str) -> None:
    assert POLICY.transient_reason(TRANSIENT[name]) is not None


@pytest.mark.parametrize("name", list(NOT_TRANSIENT))
def test_ordinary_failures_are_not_retried(name: str) -> None:
    assert POLICY.transient_reason(NOT_TRANSIENT[name]) is None


@pytest.mark.parametrize(
    ("label", "sample"),
    [
        ("os error 5", "Access is denied. (os error 5)"),
        ("os error 32", "(os error 32)"),
        ("os error 33", "(os error 33)"),
        ("Access is denied", "Caused by: Access is denied."),
        ("being used by another process", "because it is being used by another process"),
        ("locked a portion of the file", "another process has locked a portion of the file"),
        ("Failed to persist temporary file", "Failed to persist temporary file to C:\\x.rkyv"),
        ("failed to rename file", "failed to rename file from a to b"),
        ("Sharing violation", "Sharing violation."),
        ("Permission denied (os error 13)", "Permission denied (os error 13)"),
    ],
)
def test_each_signature_alone_is_detected_and_named(label: str, sample: str) -> None:
    assert POLICY.transient_reason(sample) == label


def test_every_issue_signature_is_listed() -> None:
    labels = {label for label, _rx in SIGNATURES}
    assert {"os error 5", "os error 32", "os error 33", "Access is denied", "being used by another process",
            "locked a portion of the file", "Failed to persist temporary file", "failed to rename file",
            "Sharing violation", "Permission denied (os error 13)"} <= labels


def test_extra_patterns_from_the_config() -> None:
    policy = Policy.from_config(RetryConfig(patterns=(r"Resource temporarily unavailable", r"os error 1224")))
    assert policy.transient_reason("OSError: Resource temporarily unavailable") == (
        "Resource temporarily unavailable")
    assert policy.transient_reason("(os error 1224)") == "os error 1224"
    assert POLICY.transient_reason("Resource temporarily unavailable") is None


def test_policy_takes_attempts_and_backoff_from_the_config() -> None:
    policy = Policy.from_config(RetryConfig(attempts=7, backoff=0.5, max_backoff=4))
    assert (policy.attempts, policy.backoff, policy.max_backoff) == (7, 0.5, 4.0)


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_backoff_grows_and_never_exceeds_max_backoff(monkeypatch: pytest.MonkeyPatch, jitter: float) -> None:
    monkeypatch.setattr(random, "random", lambda: jitter)
    policy = Policy.from_config(RetryConfig(backoff=2, max_backoff=30))
    delays = [policy.delay(n) for n in range(1, 12)]
    assert all(0 < d <= 30.0 for d in delays), delays
    # The first retry waits about `backoff`: half to one and a half times it.
    assert 1.0 <= delays[0] <= 3.0
    # Until the cap, each wait is twice the one before (same jitter here).
    assert delays[1] == pytest.approx(2 * delays[0])
    assert delays[2] == pytest.approx(4 * delays[0])


def test_backoff_jitter_spreads_jobs_that_failed_together() -> None:
    policy = Policy.from_config(RetryConfig(backoff=2, max_backoff=30))
    delays = {round(policy.delay(1), 6) for _ in range(50)}
    assert len(delays) > 1
    assert all(1.0 <= d <= 3.0 for d in delays)


@pytest.mark.parametrize(
    "argv",
    [["uv", "pip", "install", "x"], ["uvx", "ruff"], ["pip", "install", "x"], ["pip3", "install", "x"],
     [str(Path("/opt/tools/bin/uv")), "sync"], ["UV.EXE", "sync"], ["uv.exe", "sync"], ["pip.cmd", "install"],
     ["python", "-m", "pip", "install", "x"], ["python3.12", "-m", "pip", "install"],
     [str(Path("/usr/bin/python3")), "-m", "pip", "download", "x"]],
)
def test_cache_commands(argv: list[str]) -> None:
    assert is_cache_command(argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["pytest", "-x"], ["bash", "-c", "uv sync"], ["python", "script.py", "pip"], ["python", "-m", "pytest"],
     ["uvicorn", "app:app"], ["pipx", "run", "x"], ["make", "uv"]],
)
def test_other_commands(argv: list[str]) -> None:
    assert not is_cache_command(argv)
