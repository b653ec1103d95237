"""The interface every cache tool implements, and the figures it reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from ci_cache.keyfiles import KeyFiles, Pin
    from ci_cache.remote.layout import Entry

# Plain classes and NamedTuples, not dataclasses: every job loads this module, and `dataclasses` (with the
# `inspect` it imports, and the code it generates per class) would cost more CPU than the rest of it.


class SeedStats:
    __slots__ = ("bytes", "copied", "entries", "files", "kept", "linked", "scope", "warm")

    def __init__(self, *, files: int = 0, bytes: int = 0, linked: int = 0, copied: int = 0,
                 entries: int = 0, scope: str = "full", kept: int = 0, warm: bool = False) -> None:
        self.files = files  # files made: linked + copied
        self.bytes = bytes  # of the copies alone: a hardlink takes no space
        self.linked, self.copied, self.entries = linked, copied, entries
        # "full", or "key files" when only what the job's lock files need was seeded
        self.scope = scope
        # warm: the job cache was a former job's (the pool), refreshed in place; `kept` of the files (linked or
        # copied) were there already, as this seed would make them, and stayed
        self.kept, self.warm = kept, warm

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "linked": self.linked, "copied": self.copied,
                "entries": self.entries, "scope": self.scope, "kept": self.kept, "warm": self.warm}


class MergeStats:
    __slots__ = ("bytes", "details", "entries", "files", "kept_existing", "skipped")

    def __init__(self, *, files: int = 0, bytes: int = 0, entries: int = 0, kept_existing: int = 0,
                 skipped: int = 0, details: list[str] | None = None) -> None:
        self.files = files
        self.bytes = bytes  # of the copies alone: a hardlink takes no space
        self.entries, self.kept_existing, self.skipped = entries, kept_existing, skipped
        self.details: list[str] = [] if details is None else details

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "entries": self.entries,
                "kept_existing": self.kept_existing, "skipped": self.skipped, "details": self.details[:50]}


class SeedRequest(NamedTuple):
    """What seeding may use: the shared cache, the job's cache, and which packages the job needs."""

    shared: Path
    job: Path
    link: bool
    packages: frozenset[str] | None  # None: everything
    manifest: Path  # where seed records what it put in, for merge to find what is new
    # `job` holds a former job's cache (the pool's): refresh it in place into what this seed would make
    warm: bool = False


class MergeRequest(NamedTuple):
    job: Path
    shared: Path
    manifest: Path


class PruneRequest(NamedTuple):
    """The bounds for one shared cache. The caller holds ci-cache's writer lock for it."""

    cache: Path
    max_size: int | None
    max_age: float | None
    ci: bool  # the tool's own prune in its CI flavour, where it has one (`uv cache prune --ci`)
    env: Mapping[str, str]
    lock_timeout: float
    now: float | None = None  # None: the clock's


class PruneReport:
    def __init__(self, tool: str, *, bytes_before: int = 0, bytes_after: int = 0, evicted_entries: int = 0,
                 evicted_files: int = 0, uv_prune: str = "not run", notes: list[str] | None = None) -> None:
        self.tool, self.bytes_before, self.bytes_after = tool, bytes_before, bytes_after
        self.evicted_entries, self.evicted_files = evicted_entries, evicted_files
        # What the tool's own prune command said. Named for uv, the one tool that has one: `prune --json` shows it.
        self.uv_prune = uv_prune
        self.notes: list[str] = [] if notes is None else notes

    def __repr__(self) -> str:
        return f"PruneReport({self.__dict__!r})"


class Finding:
    def __init__(self, kind: str, path: str, problem: str, fix: list[Path] | None = None) -> None:
        self.kind = kind  # "error" (a reader could be hurt), "garbage" (harmless, reclaimable) or "note"
        self.path = path
        self.problem = problem
        self.fix: list[Path] = [] if fix is None else fix  # what `verify --fix` removes, in this order

    def __repr__(self) -> str:
        return f"Finding({self.kind!r}, {self.path!r}, {self.problem!r}, {self.fix!r})"


class VerifyReport:
    def __init__(self, cache: Path, findings: list[Finding] | None = None,
                 checked: dict[str, int] | None = None) -> None:
        self.cache = cache
        self.findings: list[Finding] = [] if findings is None else findings
        # how many of what were checked, e.g. pointers
        self.checked: dict[str, int] = {} if checked is None else checked

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------------------------------
# The fleet tier: how a tool's cache maps to remote entries (ci_cache.remote.sync moves them).

EntryId = tuple[str, str]  # (namespace, key) of a remote entry


class Wanted(NamedTuple):
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


class Pulled(NamedTuple):
    """A remote entry, with each blob it names downloaded and verified into a local file."""

    entry: Entry
    blobs: Mapping[str, Path]


# Why `PullSession.accept` declines an entry the cache already has (counted, not reported).
PRESENT = "already in the cache"


class ImportStats:
    def __init__(self) -> None:
        self.installed: list[EntryId] = []
        self.entries = 0  # installed into the cache
        self.kept_existing = 0  # the cache had them already: its copy stays
        self.files = 0
        self.bytes = 0
        self.skipped: list[str] = []  # one line each: what was not installed, and why


class Built(NamedTuple):
    """The content of one entry to publish: blobs (bytes), small files, and metadata."""

    blobs: Mapping[str, bytes]
    files: Mapping[str, bytes]
    meta: Mapping[str, Any]


class Export(NamedTuple):
    """One entry the remote may lack. `build` packs its blobs: called only when the remote lacks it."""

    namespace: str
    key: str
    build: Callable[[], Built]


class ExportPlan:
    def __init__(self) -> None:
        self.items: list[Export] = []
        self.roots: list[str] = []  # namespace prefixes the items live under
        self.skipped: list[str] = []  # what cannot be shared, and why


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
    # Whether its seed refreshes a former job's cache in place (`SeedRequest.warm`), so that a finished job's
    # cache is worth keeping in the pool (`ci_cache.pool`).
    keeps_warm: bool

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
