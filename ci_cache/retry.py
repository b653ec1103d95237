"""Which failures are transient cache errors worth another attempt, and how long to wait."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ci_cache.config import RetryConfig
from ci_cache.tools import BUILTINS

# The texts uv, pip and Windows print when another process or a scanner holds a cache file.
SIGNATURES: tuple[tuple[str, str], ...] = (
    ("os error 5", r"\(os error 5\)"),
    ("os error 32", r"\(os error 32\)"),
    ("os error 33", r"\(os error 33\)"),
    ("Access is denied", r"Access (is )?denied"),
    ("being used by another process", r"being used by another process"),
    ("locked a portion of the file", r"locked a portion of the file"),
    ("Failed to persist temporary file", r"Failed to persist temporary file"),
    ("failed to rename file", r"failed to rename file"),
    ("Sharing violation", r"Sharing violation"),
    ("Permission denied (os error 13)", r"Permission denied \(os error 13\)"),
    ("WinError 32", r"\[WinError (5|32|33)\]"),
)

# Commands whose failures can be cache contention (the built-in tools' commands); others are retried only
# with --retry.
CACHE_COMMANDS = frozenset(command for make in BUILTINS.values() for command in make().commands)


class Policy(NamedTuple):
    attempts: int
    backoff: float
    max_backoff: float
    patterns: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def from_config(cls, config: RetryConfig) -> Policy:
        compiled = [(label, re.compile(rx)) for label, rx in SIGNATURES]
        compiled += [(rx, re.compile(rx)) for rx in config.patterns]
        return cls(config.attempts, config.backoff, config.max_backoff, tuple(compiled))

    def transient_reason(self, output: str) -> str | None:
        """The signature found in the output, or None when the failure is not a cache error."""
        for label, pattern in self.patterns:
            if pattern.search(output):
                return label
        return None

    def delay(self, retry_number: int) -> float:
        """Exponential backoff with jitter, so that jobs that failed together retry apart."""
        import random

        base = min(self.backoff * (2 ** (retry_number - 1)), self.max_backoff)
        return float(min(base * (0.5 + random.random()), self.max_backoff))


def for_command(config: RetryConfig, argv: Sequence[str], *, choice: bool | None = None) -> Policy | None:
    """How to retry `argv`, or None for never: as `choice` says (--retry, --no-retry), else only a cache command."""
    wanted = is_cache_command(argv) if choice is None else choice
    return Policy.from_config(config) if wanted else None


def is_cache_command(argv: Sequence[str]) -> bool:
    first = argv[0] if argv else ""
    name = Path(first).name.lower()
    for suffix in (".exe", ".cmd", ".bat"):
        name = name.removesuffix(suffix)
    return name in CACHE_COMMANDS or (name.startswith(("python", "py")) and list(argv)[1:3] == ["-m", "pip"])
