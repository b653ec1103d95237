"""The one error hierarchy of ci-cache, each kind with its own exit code."""

from __future__ import annotations


class CiCacheError(Exception):
    """Base class: a message that says what failed and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(CiCacheError):
    """A bad command line, a bad job id, or a bad value given on the command line."""

    exit_code = 2


class ConfigError(UsageError):
    """A malformed or invalid ci-cache.yml or CI_CACHE_* variable."""


class JobBusy(UsageError):
    """`setup` or `run` for a job id whose allocation another live setup or run holds."""

    exit_code = 6


class LockTimeout(CiCacheError):
    """A lock could not be had within the configured timeout."""

    exit_code = 3


class StoreError(CiCacheError):
    """The root or a cache cannot be used: unwritable, full, or broken."""

    exit_code = 4


class AllocationMissing(CiCacheError):
    """`finish` found no allocation for the job."""

    exit_code = 7


class NothingAllocated(AllocationMissing):
    """`finish` carries CI_CACHE_TOKEN=none: its setup allocated nothing (mode off, or the setup failed)."""


class VerifyFailed(CiCacheError):
    """`verify` or `doctor` found a problem."""

    exit_code = 5


class CommandNotFound(CiCacheError):
    """`run` could not start the command."""

    exit_code = 127


class Interrupted(CiCacheError):
    """Ctrl-C."""

    exit_code = 130


class RemoteError(CiCacheError):
    """The remote cache (object storage) failed; `kind` says how, so callers can degrade per kind.

    Kinds: unreachable, timeout, forbidden, not_found, conflict, server, garbage, corrupt, config.
    """

    exit_code = 8

    def __init__(self, message: str, *, kind: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
