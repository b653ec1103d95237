"""Human-facing messages: always on stderr, so that stdout stays machine-readable."""

from __future__ import annotations

import sys

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def quiet() -> bool:
    """Whether only warnings and errors are shown (progress lines stay silent too)."""
    return _quiet


def info(message: str) -> None:
    if not _quiet:
        print(f"ci-cache: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"ci-cache: warning: {message}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"ci-cache: error: {message}", file=sys.stderr, flush=True)
