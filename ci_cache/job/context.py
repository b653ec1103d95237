"""What a job is: the Context the CLI resolves once, what its setup allocated, and what its finish did."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ci_cache import osapi
from ci_cache.config import Config
from ci_cache.providers import JobIdentity, job_key
from ci_cache.store import Store

if TYPE_CHECKING:
    from ci_cache.keyfiles import KeyFiles

# setup's env carries the allocation's token; `finish` only finalises the record that holds the same one.
# NO_TOKEN says "this setup allocated nothing" (mode off, or it failed): a finish that carries it does
# nothing. It is a word, not "", because PowerShell, cmd and Jenkins' withEnv delete a variable set to "".
TOKEN_VAR = "CI_CACHE_TOKEN"
NO_TOKEN = "none"


class Context(NamedTuple):
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


class Allocation:
    """What setup made for the job: its dir, the caches and env its commands get, and its lease (`run`)."""

    def __init__(self, job: str, key: str, job_dir: Path, mode: str, *, env: dict[str, str] | None = None,
                 path_prepend: list[str] | None = None, caches: dict[str, str] | None = None,
                 warnings: list[str] | None = None, seeded: dict[str, Any] | None = None,
                 phases: dict[str, float] | None = None, lease: osapi.FileLockHandle | None = None) -> None:
        self.job, self.key, self.job_dir, self.mode = job, key, job_dir, mode
        self.pool: dict[str, str] = {}  # tool -> the scope its cache goes back to the pool under (`ci_cache.pool`)
        self.key_files: KeyFiles | None = None  # what the job's key files name, once read (`seed.key_files`)
        self.notes: dict[str, Any] = {}  # what setup's steps leave for finish, in the record setup writes once
        self.env: dict[str, str] = {} if env is None else env
        self.path_prepend: list[str] = [] if path_prepend is None else path_prepend
        self.caches: dict[str, str] = {} if caches is None else caches
        self.warnings: list[str] = [] if warnings is None else warnings
        self.seeded: dict[str, Any] = {} if seeded is None else seeded
        self.phases: dict[str, float] = {} if phases is None else phases
        self.lease = lease

    def __repr__(self) -> str:
        return f"Allocation({self.__dict__!r})"

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


class FinishResult:
    """What finish did: the merge decision and figures, the time of each phase, and every warning."""

    def __init__(self, job: str, key: str, mode: str, status: str, merge_decision: str, *,
                 merged: dict[str, Any] | None = None, seeded: dict[str, Any] | None = None,
                 phases: dict[str, float] | None = None, warnings: list[str] | None = None,
                 cleanup: dict[str, str] | None = None, restore: dict[str, Any] | None = None,
                 remote: dict[str, Any] | None = None) -> None:
        self.job, self.key, self.mode, self.status, self.merge_decision = job, key, mode, status, merge_decision
        self.merged: dict[str, Any] = {} if merged is None else merged
        self.seeded: dict[str, Any] = {} if seeded is None else seeded
        self.phases: dict[str, float] = {} if phases is None else phases
        self.warnings: list[str] = [] if warnings is None else warnings
        # {"left_for_gc": dir, "reason": ...} when the job dir could not be moved away (held open) and gc takes it.
        self.cleanup: dict[str, str] = {} if cleanup is None else cleanup
        # What setup's env changed in the shell, as it was before (`env.previous`); not part of the summary.
        self.restore: dict[str, Any] = {} if restore is None else restore
        self.remote: dict[str, Any] = {} if remote is None else remote  # the fleet tier: setup's pull, this push
        self.pooled: list[str] = []  # the tools whose cache went to the pool for the next job

    def __repr__(self) -> str:
        return f"FinishResult({self.__dict__!r})"

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
