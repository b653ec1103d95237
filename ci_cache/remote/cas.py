"""Content-addressed reads and writes on an ObjectStore: verified blobs, entries and used marks."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import date
from pathlib import Path

from ci_cache import fsops
from ci_cache.errors import RemoteError, StoreError
from ci_cache.remote import layout
from ci_cache.remote.layout import BlobRef, Entry
from ci_cache.remote.objectstore import ObjectStore


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Cas:
    """Blobs named by their sha256 (verified on every download), entries naming them, used marks."""

    def __init__(self, store: ObjectStore, *, max_blob_size: int = 2 << 30) -> None:
        self.store = store
        self.max_blob_size = max_blob_size

    async def put_blob(self, data: bytes) -> tuple[BlobRef, bool]:
        """Publish `data` as a blob. Returns its ref and True if this call created it (False: it was there)."""
        if len(data) > self.max_blob_size:
            raise RemoteError(f"a blob of {len(data)} bytes is over remote.max_blob_size ({self.max_blob_size})",
                              kind="config", hint="raise remote.max_blob_size, or leave this entry local")
        ref = BlobRef(sha256_of(data), len(data))
        created = await self.store.put_if_absent(layout.blob_key(ref.digest), data)
        return ref, created

    async def has_blob(self, digest: str) -> bool:
        return await self.store.head(layout.blob_key(digest)) is not None

    def _corrupt(self, ref: BlobRef, problem: str) -> RemoteError:
        return RemoteError(f"remote blob {ref.digest[:16]}... at {self.store.where}: {problem}", kind="corrupt",
                           hint="it was not used; run `ci-cache remote verify` and `ci-cache remote gc`")

    async def get_blob(self, ref: BlobRef) -> bytes:
        """The blob's bytes, only if their sha256 and size match `ref`."""
        data = await self.store.get(layout.blob_key(ref.digest), max_size=min(ref.size, self.max_blob_size))
        if len(data) != ref.size:
            raise self._corrupt(ref, f"{len(data)} bytes instead of {ref.size}")
        if sha256_of(data) != ref.digest:
            raise self._corrupt(ref, "its bytes do not match its sha256")
        return data

    async def get_blob_to(self, ref: BlobRef, path: Path) -> None:
        """Download the blob into the new file `path`; it is deleted again unless size and sha256 match."""
        try:
            size, digest = await self.store.get_to(layout.blob_key(ref.digest), path,
                                                   max_size=min(ref.size, self.max_blob_size))
            if size != ref.size:
                raise self._corrupt(ref, f"{size} bytes instead of {ref.size}")
            if digest != ref.digest:
                raise self._corrupt(ref, "its bytes do not match its sha256")
        except BaseException:
            with contextlib.suppress(OSError, StoreError):
                fsops.unlink(path)
            raise

    async def put_entry(self, entry: Entry) -> bool:
        """Publish an entry (after its blobs). True if created, False if one was there already (it wins)."""
        return await self.store.put_if_absent(layout.entry_key(entry.namespace, entry.key), entry.encode())

    async def get_entry(self, namespace: str, key: str) -> Entry | None:
        """The entry, None when there is none; RemoteError(kind="garbage") when it cannot be read."""
        object_key = layout.entry_key(namespace, key)
        try:
            data = await self.store.get(object_key, max_size=layout.MAX_ENTRY_BYTES)
        except RemoteError as exc:
            if exc.kind == "not_found":
                return None
            raise
        entry = Entry.decode(data, where=f"{object_key} at {self.store.where}")
        if (entry.namespace, entry.key) != (namespace, key):
            raise RemoteError(f"remote entry {object_key} at {self.store.where}: it names {entry.namespace}/"
                              f"{entry.key}", kind="garbage", hint="run `ci-cache remote verify`")
        return entry

    async def mark_used(self, namespace: str, key: str, day: date) -> bool:
        """Record that the entry was used on `day`: one empty create-if-absent object per entry and day.

        The first agent to use an entry on a day creates the mark; every other use that day is a cheap
        "already there". GC keeps entries with recent marks, so popular entries never expire together.
        """
        return await self.store.put_if_absent(layout.used_key(day, namespace, key), b"")
