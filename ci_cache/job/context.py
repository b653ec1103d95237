"""What a job is: the Context the CLI resolves once, what its setup allocated, and what its finish did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_cache import osapi
from ci_cache.config import Config
from ci_cache.providers import JobIdentity, job_key
from ci_cache.store import Store

# setup's env carries the allocation's token; `finish` only finalises the record that holds the same one.
# NO_TOKEN says "this setup allocated nothing" (mode off, or it failed): a finish that carries it does
# nothing. It is a word, not "", because PowerShell, cmd and Jenkins' withEnv delete a variable set to "".
TOKEN_VAR = "CI_CACHE_TOKEN"
NO_TOKEN = "none"


@dataclass(frozen=True)
class Context:
    """Everything a command needs, resolved once by the CLI; nothing below reads os.environ."""

    config: Config
    env: Mapping[str, str]
    cwd: Path
    windows: bool
    identity: JobIdentity
    root: Path

    @property
    def store(self) -> Store:
        return Store(self.root)

    @property
    def key(self) -> str:
        return job_key(self.identity.job_id)

    @property
    def strict(self) -> bool:
        return self.config.strict

    @property
    def workspace(self) -> Path:
        """Where the job's files are (its key files are looked for there): the CI's workspace, else the cwd."""
        return Path(self.identity.workspace) if self.identity.workspace else self.cwd


@dataclass
class Allocation:
    """What setup made for the job: its dir, the caches and env its commands get, and its lease (`run`)."""

    job: str
    key: str
    job_dir: Path
    mode: str
    env: dict[str, str] = field(default_factory=dict)
    path_prepend: list[str] = field(default_factory=list)
    caches: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seeded: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    lease: osapi.FileLockHandle | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "job_key": self.key,
            "job_dir": str(self.job_dir),
            "mode": self.mode,
            "env": self.env,
            "path_prepend": self.path_prepend,
            "caches": self.caches,
            "warnings": self.warnings,
        }


@dataclass
class FinishResult:
    """What finish did: the merge decision and figures, the time of each phase, and every warning."""

    job: str
    key: str
    mode: str
    status: str
    merge_decision: str
    merged: dict[str, Any] = field(default_factory=dict)
    seeded: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # {"left_for_gc": dir, "reason": ...} when the job dir could not be moved away (held open) and gc takes it.
    cleanup: dict[str, str] = field(default_factory=dict)
    # What setup's env changed in the shell, as it was before (`env.previous`); not part of the summary.
    restore: dict[str, Any] = field(default_factory=dict)
    remote: dict[str, Any] = field(default_factory=dict)  # the fleet tier: setup's pull, this push

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "restore"}


def effective_mode(ctx: Context) -> tuple[str, str | None]:
    """The mode to use, and why it differs from the configured one (an untrusted job never writes)."""
    mode = ctx.config.resolved_mode(ctx.windows)
    if ctx.config.merge == "protected" and not ctx.identity.trusted and mode in ("shared", "direct"):
        return "isolated", (f"untrusted job ({ctx.identity.trust_reason}): isolated with no merge, instead of "
                            f"{mode}, so that it cannot write to the shared cache")
    return mode, None


def write_policy(ctx: Context, key: str, policy: str, status: str, *, needs_trust: bool) -> tuple[bool, str]:
    """Whether a write policy (`merge`, `remote.push`) lets this job write, by its status and trust; and why.

    `needs_trust`: only a trusted job may write (the policy is `protected`, or one it follows is).
    """
    if policy == "never":
        return False, f"{key}: never"
    if needs_trust and not ctx.identity.trusted:
        return False, f"{key}: {policy}, and the job is untrusted ({ctx.identity.trust_reason})"
    if policy == "success" and status != "success":
        return False, f"{key}: success, and the job's status is {status}"
    return True, f"{key}: {policy}"
