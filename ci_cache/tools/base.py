"""The interface every cache tool implements, and the figures it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class SeedStats:
    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    entries: int = 0
    scope: str = "full"  # "full", or "key files" when only what the job's lock files need was seeded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MergeStats:
    files: int = 0
    bytes: int = 0
    entries: int = 0
    kept_existing: int = 0
    skipped: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = self.details[:50]
        return data


@dataclass(frozen=True)
class SeedRequest:
    """What seeding may use: the shared cache, the job's cache, and which packages the job needs."""

    shared: Path
    job: Path
    link: bool
    packages: frozenset[str] | None  # None: everything
    manifest: Path  # where seed records what it put in, for merge to find what is new


@dataclass(frozen=True)
class MergeRequest:
    job: Path
    shared: Path
    manifest: Path


@dataclass(frozen=True)
class PruneRequest:
    """The bounds for one shared cache. The caller holds ci-cache's writer lock for it."""

    cache: Path
    max_size: int | None
    max_age: float | None
    ci: bool  # the tool's own prune in its CI flavour, where it has one (`uv cache prune --ci`)
    env: Mapping[str, str]
    lock_timeout: float
    now: float | None = None  # None: the clock's


@dataclass
class PruneReport:
    tool: str
    bytes_before: int = 0
    bytes_after: int = 0
    evicted_entries: int = 0
    evicted_files: int = 0
    # What the tool's own prune command said. Named for uv, the one tool that has one: `prune --json` shows it.
    uv_prune: str = "not run"
    notes: list[str] = field(default_factory=list)


@dataclass
class Finding:
    kind: str  # "error" (a reader could be hurt), "garbage" (harmless, reclaimable) or "note"
    path: str
    problem: str
    fix: list[Path] = field(default_factory=list)  # what `verify --fix` removes, in this order


@dataclass
class VerifyReport:
    cache: Path
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # how many of what were checked, e.g. pointers

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


class CacheTool(Protocol):
    """A cache ci-cache can give each job: the env that points the tool at it, seed and merge; and for the
    shared cache, how to bound it (prune) and which invariants it must keep (verify)."""

    name: str
    # Commands that use this cache, coordinated in shared mode and retried by `run`.
    commands: tuple[str, ...]
    # Whether the tool has a shared cache at all (the temp tool does not).
    has_shared_cache: bool

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        ...

    def seed(self, request: SeedRequest) -> SeedStats:
        ...

    def merge(self, request: MergeRequest) -> MergeStats:
        ...

    def prune(self, request: PruneRequest) -> PruneReport:
        """Bound the shared cache by size and age, evicting whole entries only."""
        ...

    def verify(self, cache: Path) -> VerifyReport:
        """Check the cache's own invariants (a missing cache is an empty one); each finding lists what
        fixing it removes."""
        ...
