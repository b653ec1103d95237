"""The interface every cache tool implements, and the figures it reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ci_cache.keyfiles import KeyFiles, Pin
from ci_cache.remote.layout import Entry


@dataclass
class SeedStats:
    files: int = 0  # files made: linked + copied
    bytes: int = 0  # of the copies alone: a hardlink takes no space
    linked: int = 0
    copied: int = 0
    entries: int = 0
    scope: str = "full"  # "full", or "key files" when only what the job's lock files need was seeded

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MergeStats:
    files: int = 0
    bytes: int = 0  # of the copies alone: a hardlink takes no space
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


# ---------------------------------------------------------------------------------------------------
# The fleet tier: how a tool's cache maps to remote entries (ci_cache.remote.sync moves them).

EntryId = tuple[str, str]  # (namespace, key) of a remote entry


@dataclass(frozen=True)
class Wanted:
    """What a job's key files ask of the remote: files by hash, packages by name, index listings."""

    pins: frozenset[Pin] = frozenset()
    unpinned: frozenset[str] = frozenset()  # names without a hash: found by name (newest version)
    resolved: frozenset[str] = frozenset()  # names a resolver looks up: their index listing is pulled too

    @classmethod
    def from_key_files(cls, found: KeyFiles) -> Wanted:
        return cls(found.pins, found.unpinned, found.resolved)

    @property
    def empty(self) -> bool:
        return not (self.pins or self.unpinned or self.resolved)


@dataclass
class Pulled:
    """A remote entry, with each blob it names downloaded and verified into a local file."""

    entry: Entry
    blobs: Mapping[str, Path]


# Why `PullSession.accept` declines an entry the cache already has (counted, not reported).
PRESENT = "already in the cache"


@dataclass
class ImportStats:
    installed: list[EntryId] = field(default_factory=list)
    entries: int = 0  # installed into the cache
    kept_existing: int = 0  # the cache had them already: its copy stays
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # one line each: what was not installed, and why


@dataclass(frozen=True)
class Built:
    """The content of one entry to publish: blobs (bytes), small files, and metadata."""

    blobs: Mapping[str, bytes]
    files: Mapping[str, bytes]
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class Export:
    """One entry the remote may lack. `build` packs its blobs: called only when the remote lacks it."""

    namespace: str
    key: str
    build: Callable[[], Built]


@dataclass
class ExportPlan:
    items: list[Export] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)  # namespace prefixes the items live under
    skipped: list[str] = field(default_factory=list)  # what cannot be shared, and why


class PullSession(Protocol):
    """One pull into one cache, round by round: what to list, what to take, how to install it."""

    def lookups(self) -> list[str]:
        """Namespaces to list (one LIST each) for what the cache lacks; empty when nothing is missing."""
        ...

    def choose(self, found: Sequence[EntryId]) -> list[EntryId]:
        """The listed entries worth reading."""
        ...

    def accept(self, entry: Entry) -> str | None:
        """None to pull the entry's blobs and install it; else why not (another platform, already here)."""
        ...

    def present(self, entry: Entry) -> None:
        """The cache already had this entry (`accept` said PRESENT): what it stands for is met."""
        ...

    def prepare(self, blob: Path, role: str) -> None:
        """Work on one verified blob that need not wait for the install (uv: unpack an archive beside it),
        in a worker thread while the other blobs still download. Nothing in the cache changes here."""
        ...

    def install(self, pulled: Sequence[Pulled]) -> ImportStats:
        """Install verified entries into the cache. The caller holds ci-cache's writer lock."""
        ...

    def next_round(self, installed: Sequence[Entry]) -> list[str]:
        """More namespaces to list, for what the installed entries need in turn (by-name closure)."""
        ...

    def unmet(self) -> list[str]:
        """What was wanted and is neither in the cache nor on the remote (one line each)."""
        ...

    def notes(self) -> list[str]:
        """Why the session could not look for something at all (e.g. no uv to ask its bucket versions)."""
        ...


class RemoteCodec(Protocol):
    """A tool's side of the fleet tier: its cache to entries (export) and entries to its cache (pull)."""

    def pull_session(self, cache: Path, wanted: Wanted) -> PullSession:
        ...

    def exports(self, cache: Path, groups: Sequence[str] | None) -> ExportPlan:
        """Entries for the given cache-relative groups (what a merge added), or for everything (None)."""
        ...

    def groups(self, cache: Path) -> list[str]:
        """Every group of the cache, as `exports` takes them, from directory listings alone (no file is
        opened): two calls, before and after a job, say what the job added."""
        ...

    def hold(self, cache: Path, *, timeout: float) -> AbstractContextManager[object]:
        """Keep what the cache holds from being deleted while its entries are packed (uv: its own root
        lock, shared, so that a `uv cache clean` or `prune` waits), for at most `timeout` seconds of waiting."""
        ...


class CacheTool(Protocol):
    """A cache ci-cache can give each job: the env that points the tool at it, seed and merge; and for the
    shared cache, how to bound it (prune) and which invariants it must keep (verify)."""

    name: str
    # Commands that use this cache, coordinated in shared mode and retried by `run`.
    commands: tuple[str, ...]
    # Whether the tool has a shared cache at all (the temp tool does not).
    has_shared_cache: bool
    # The file (relative to a cache) that the tool itself holds locked while any of its commands uses the
    # cache, so that gc can tell a temp dir in use from a leftover; None when the tool has no such lock.
    own_lock: str | None

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

    def remote(self, env: Mapping[str, str]) -> RemoteCodec | None:
        """How this tool's cache travels through the fleet tier; None when it does not."""
        ...
