"""The remote's key layout and its small JSON entries: content-addressed, immutable, versioned.

    <prefix>/ci-cache-v1/blobs/<sha256[:2]>/<sha256>          immutable bytes, named by their sha256
    <prefix>/ci-cache-v1/entries/<namespace>/<key>.json       what one cached thing is made of
    <prefix>/ci-cache-v1/used/<YYYY-MM-DD>/<namespace>/<key>  empty: the entry was used that day

Nothing is ever overwritten (every write is create-if-absent) and there is no shared "latest" object.
Namespaces carry whatever must never mix (a tool and its bucket versions, a platform), chosen by the
caller; so do keys (e.g. the sha256 of a wheel). A new layout version is a new top folder.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ci_cache.errors import RemoteError, UsageError

LAYOUT = "ci-cache-v1"
BLOBS = f"{LAYOUT}/blobs/"
ENTRIES = f"{LAYOUT}/entries/"
USED = f"{LAYOUT}/used/"
MAX_ENTRY_BYTES = 1 << 20
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAMESPACE_DEPTH = 8


def check_namespace(namespace: str) -> str:
    parts = namespace.split("/")
    if not namespace or len(parts) > _MAX_NAMESPACE_DEPTH or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise UsageError(f"remote namespace {namespace!r}: use 1-{_MAX_NAMESPACE_DEPTH} `/`-separated segments of "
                         "letters, digits and ._+=-", hint="e.g. uv/wheels-v5/archive-v0")
    return namespace


def check_key(key: str) -> str:
    if not _SEGMENT.fullmatch(key):
        raise UsageError(f"remote entry key {key!r}: use 1-100 letters, digits and ._+=- (no `/`)",
                         hint="e.g. a sha256 in hex")
    return key


def check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise UsageError(f"{digest!r} is not a sha256 in lowercase hex")
    return digest


def blob_key(digest: str) -> str:
    return f"{BLOBS}{digest[:2]}/{check_digest(digest)}"


def entry_key(namespace: str, key: str) -> str:
    return f"{ENTRIES}{check_namespace(namespace)}/{check_key(key)}.json"


def used_key(day: date, namespace: str, key: str) -> str:
    return f"{USED}{day.isoformat()}/{check_namespace(namespace)}/{check_key(key)}"


def parse_blob_key(key: str) -> str | None:
    """The digest a blob key names, or None for anything else."""
    if not key.startswith(BLOBS):
        return None
    digest = key.rsplit("/", 1)[-1]
    return digest if _DIGEST.fullmatch(digest) and key == f"{BLOBS}{digest[:2]}/{digest}" else None


def parse_entry_key(key: str) -> tuple[str, str] | None:
    """(namespace, key) of an entry key, or None for anything else."""
    if not key.startswith(ENTRIES) or not key.endswith(".json"):
        return None
    namespace, _, name = key[len(ENTRIES):-len(".json")].rpartition("/")
    try:
        return check_namespace(namespace), check_key(name)
    except UsageError:
        return None


def parse_used_key(key: str) -> tuple[date, str, str] | None:
    """(day, namespace, key) of a used mark, or None for anything else."""
    if not key.startswith(USED):
        return None
    day_text, _, rest = key[len(USED):].partition("/")
    namespace, _, name = rest.rpartition("/")
    try:
        return date.fromisoformat(day_text), check_namespace(namespace), check_key(name)
    except (ValueError, UsageError):
        return None


@dataclass(frozen=True)
class BlobRef:
    """A blob an entry needs: its sha256 and size."""

    digest: str
    size: int


@dataclass(frozen=True)
class Entry:
    """One cached thing: named blobs, small opaque files the tool needs, and opaque metadata."""

    namespace: str
    key: str
    blobs: Mapping[str, BlobRef]
    files: Mapping[str, bytes] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""  # ISO 8601 UTC; set when encoded if empty

    def encode(self) -> bytes:
        check_namespace(self.namespace)
        check_key(self.key)
        doc = {
            "layout": LAYOUT,
            "namespace": self.namespace,
            "key": self.key,
            "created": self.created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "blobs": {role: {"sha256": check_digest(b.digest), "size": b.size}
                      for role, b in sorted(self.blobs.items())},
            "files": {name: base64.b64encode(data).decode("ascii") for name, data in sorted(self.files.items())},
            "meta": dict(self.meta),
        }
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
        if len(data) > MAX_ENTRY_BYTES:
            raise UsageError(f"remote entry {self.namespace}/{self.key}: {len(data)} bytes, more than "
                             f"{MAX_ENTRY_BYTES}", hint="put large content in a blob, not in an entry's files")
        return data

    @classmethod
    def decode(cls, data: bytes, *, where: str) -> Entry:
        """Parse an entry; anything malformed is RemoteError(kind="garbage"), never a half-read entry."""
        try:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("layout") != LAYOUT:
                raise ValueError(f"not a {LAYOUT} entry")
            blobs = {str(role): BlobRef(check_digest(str(b["sha256"])), int(b["size"]))
                     for role, b in doc["blobs"].items()}
            if any(b.size < 0 for b in blobs.values()):
                raise ValueError("a negative blob size")
            files = {str(name): base64.b64decode(text, validate=True) for name, text in doc.get("files", {}).items()}
            meta = doc.get("meta", {})
            if not isinstance(meta, dict):
                raise ValueError("meta is not a mapping")
            return cls(namespace=check_namespace(str(doc["namespace"])), key=check_key(str(doc["key"])),
                       blobs=blobs, files=files, meta=meta, created=str(doc["created"]))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, UsageError) as exc:
            raise RemoteError(f"remote entry {where}: unreadable ({type(exc).__name__}: {str(exc)[:200]})",
                              kind="garbage", hint="run `ci-cache remote verify`; `remote gc` removes it") from None
