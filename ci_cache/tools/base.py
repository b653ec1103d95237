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


class CacheTool(Protocol):
    """A cache ci-cache can give each job: the env that points the tool at it, seed and merge."""

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
