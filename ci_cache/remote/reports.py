"""What a pull or a push did, as its report says it (light: no transfer machinery is imported with it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PullReport:
    lookups: int = 0  # namespaces listed
    entries_read: int = 0
    entries_installed: int = 0
    entries_present: int = 0  # the cache had them already
    entries_skipped: list[str] = field(default_factory=list)  # another platform, unusable, ...
    missing: list[str] = field(default_factory=list)  # wanted, and nowhere on the remote
    blobs: int = 0
    bytes: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entries_skipped"] = self.entries_skipped[:50]
        data["missing"] = self.missing[:50]
        return data


@dataclass
class PushReport:
    entries: int = 0  # entries the cache offered
    entries_pushed: int = 0
    entries_present: int = 0  # the remote had them (or another agent published them meanwhile)
    blobs_pushed: int = 0
    blobs_present: int = 0
    bytes: int = 0  # uploaded
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # what cannot be shared, and why
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = self.skipped[:50]
        return data
