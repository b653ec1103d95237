"""The few object-storage operations the fleet tier needs, as a Protocol any backend can implement.

Every method raises RemoteError (with a kind) on failure, never a backend's own exception, and no
message carries a credential. Keys are `/`-separated and relative to the configured prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectMeta:
    """One stored object: its key (relative to the prefix), size and last-modified time (UTC)."""

    key: str
    size: int
    modified: datetime


class ObjectStore(Protocol):
    """Object storage with create-if-absent writes. All methods are coroutines, so transfers overlap."""

    @property
    def where(self) -> str:
        """How messages name this store, e.g. `s3://bucket/prefix at https://host` (no credentials)."""
        ...

    async def get(self, key: str, *, max_size: int) -> bytes:
        """The whole object; RemoteError(kind="not_found") if absent, kind="garbage" if over max_size."""
        ...

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        ...

    async def get_to(self, key: str, path: Path, *, max_size: int) -> tuple[int, str]:
        """Stream the object into the new file `path`; returns (size, sha256 hex) of what was written."""
        ...

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object unless it exists. True if this call created it, False if it was there already.

        "Already there" (HTTP 412 or 409) is success: objects are immutable and named by what they hold.
        """
        ...

    async def head(self, key: str) -> ObjectMeta | None:
        """The object's metadata, or None when it does not exist."""
        ...

    async def list(self, prefix: str) -> list[ObjectMeta]:
        """Every object whose key starts with `prefix` (a folder: end it with `/`)."""
        ...

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""
        ...
