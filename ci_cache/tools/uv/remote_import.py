"""From pulled remote entries into a uv cache, with uv's own protocol.

Archives are unpacked into a temp folder inside `archive-v0` and renamed in whole; then a wheel
group's files go in, each under a temp name then renamed, the pointer last (uv trusts only a group
whose pointer exists); a built wheel's revision folder is assembled beside its version folder,
renamed in, then the revision pointer is written. What the cache already has stays (as merge keeps
the target's copy). A blob that failed verification never reaches this module, and a group whose
archive failed to unpack is not installed.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_cache import fsops, osapi
from ci_cache.errors import RemoteError, StoreError
from ci_cache.remote.archive import Packed, unpack
from ci_cache.tools.base import ImportStats, Pulled
from ci_cache.tools.uv.buckets import Buckets
from ci_cache.tools.uv.layout import ARCHIVE_BUCKET, SDIST_POINTERS, hold_root_lock
from ci_cache.tools.uv.merge import _group_valid
from ci_cache.tools.uv.pointers import PointerError, revision_pointer, wheel_pointer
from ci_cache.tools.uv.remote_names import is_group_of, parse_wheel

# uv links a group to its archive with a text file on Windows, a symlink elsewhere.
WINDOWS_LINKS = osapi.IS_WINDOWS
_PART = re.compile(r"^[A-Za-z0-9_+=-][A-Za-z0-9._+=-]{0,199}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")


class EntryProblem(ValueError):
    """An entry whose metadata or files do not hold together: never installed."""


def safe_rel(path: Any, bucket: str) -> str:
    """A cache-relative path from an entry, checked: inside `bucket`, no `..`, no odd characters."""
    if not isinstance(path, str):
        raise EntryProblem("no path")
    parts = path.split("/")
    if parts[0] != bucket or not all(_PART.fullmatch(p) for p in parts):
        raise EntryProblem(f"the path {path[:120]!r} is not inside {bucket}")
    return path


def _part(value: Any, what: str) -> str:
    if not isinstance(value, str) or (value and not _PART.fullmatch(value)):
        raise EntryProblem(f"its {what} {str(value)[:60]!r} is not a plain name")
    return value


def archive_id(value: Any) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise EntryProblem(f"{str(value)[:60]!r} is not an archive id")
    return value


def check_wheel(meta: Mapping[str, Any], files: Mapping[str, bytes], buckets: Buckets) -> None:
    """A wheel entry's pointer must name the archive, wheel and sha256 its metadata and key claim."""
    safe_rel(meta.get("path"), buckets.wheels)
    group = _part(meta.get("group"), "group")
    if meta.get("pointer") != f"{group}.http":
        raise EntryProblem("its pointer is not the group's .http")
    try:
        found = wheel_pointer(".http", files.get("pointer", b""))
    except PointerError as exc:
        raise EntryProblem(f"unreadable pointer ({exc})") from None
    wheel = parse_wheel(found.filename)
    if (found.archive, found.sha256, found.filename) != (archive_id(meta.get("archive")), meta.get("sha256"),
                                                         meta.get("filename")) or wheel is None \
            or not is_group_of(group, wheel):
        raise EntryProblem("its pointer does not match its metadata")


def check_build(meta: Mapping[str, Any], files: Mapping[str, bytes], buckets: Buckets) -> None:
    safe_rel(meta.get("path"), buckets.sdists)
    if meta.get("pointer") != "revision.http":
        raise EntryProblem("its pointer is not a revision.http")
    _part(meta.get("shard", ""), "config-settings folder")
    link = _part(meta.get("link"), "link")
    archive_id(meta.get("archive"))
    try:
        found = revision_pointer(".http", files.get("pointer", b""))
    except PointerError as exc:
        raise EntryProblem(f"unreadable pointer ({exc})") from None
    if (found.revision, found.sha256) != (meta.get("revision"), meta.get("sha256")) or not link \
            or meta.get("filename") != f"{link}.whl" or parse_wheel(f"{link}.whl") is None:
        raise EntryProblem("its pointer does not match its metadata")


def check_listing(meta: Mapping[str, Any], buckets: Buckets) -> None:
    path = safe_rel(meta.get("path"), buckets.simple)
    if not path.endswith(".rkyv") or not isinstance(meta.get("mtime_ns"), int):
        raise EntryProblem("not an index listing")


def link_text(folder_rel: str, ident: str) -> str:
    """What a link to `archive-v0/<ident>` holds: a relative symlink's text on POSIX; on Windows, the
    text of uv's link file."""
    if WINDOWS_LINKS:
        return f"{ARCHIVE_BUCKET}/{ident}"
    depth = len([p for p in folder_rel.split("/") if p])
    return "../" * depth + f"{ARCHIVE_BUCKET}/{ident}"


def put_link(target: Path, text: str) -> None:
    """A link to an archive, made under a temp name and renamed in: a symlink on POSIX, uv's text
    file on Windows."""
    if WINDOWS_LINKS:
        fsops.write_atomic(target, text.encode())
        return
    tmp = fsops.temp_sibling(target)
    try:
        fsops.symlink(text, tmp)
        fsops.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            fsops.unlink(tmp)


@dataclass(frozen=True)
class Unpacked:
    """An archive blob unpacked beside itself before the install, and what it held."""

    folder: Path
    packed: Packed


def unpack_beside(blob: Path) -> Unpacked | None:
    """Unpack an archive blob into a folder next to it; None when it will not unpack (the install then
    tries again and says why)."""
    folder = blob.with_name(blob.name + ".unpacked")
    try:
        with open(blob, "rb") as fh:
            return Unpacked(folder, unpack(fh, folder, what=blob.name))
    except RemoteError:
        return None


class Installer:
    """One import of pulled entries into a cache. The caller holds ci-cache's writer lock.

    `prepared` holds archives already unpacked beside their blobs (`unpack_beside`): each is renamed into
    the cache instead of being unpacked there, when it is on the same file system.
    """

    def __init__(self, cache: Path, buckets: Buckets, *, prepared: Mapping[Path, Unpacked | None] | None = None
                 ) -> None:
        self.cache = cache
        self.buckets = buckets
        self.prepared = dict(prepared or {})
        self.stats = ImportStats()
        self.archives: dict[str, bool] = {}

    def run(self, pulled: Sequence[Pulled]) -> ImportStats:
        fsops.makedirs(self.cache)
        builds: dict[str, list[Pulled]] = defaultdict(list)
        with hold_root_lock(self.cache):
            for item in pulled:
                kind = item.entry.meta.get("kind")
                try:
                    if kind == "wheel":
                        self._wheel(item)
                    elif kind == "build":
                        builds[safe_rel(item.entry.meta.get("path"), self.buckets.sdists)].append(item)
                    elif kind == "listing":
                        self._listing(item)
                    else:
                        raise EntryProblem(f"unknown kind {kind!r}")
                except EntryProblem as exc:
                    self._skip(item, str(exc))
            for rel, items in sorted(builds.items()):
                self._builds(rel, items)
        return self.stats

    def _skip(self, item: Pulled, why: str) -> None:
        self.stats.skipped.append(f"{item.entry.namespace}/{item.entry.key}: {why}")

    def _archive(self, ident: str, blob: Path | None, what: str) -> bool:
        """The archive unpacked and renamed in whole (or already there); False if it could not be."""
        if ident in self.archives:
            return self.archives[ident]
        target = self.cache / ARCHIVE_BUCKET / ident
        ok = target.is_dir()
        if not ok and blob is not None:
            fsops.makedirs(target.parent)
            tmp = fsops.temp_sibling(target)
            try:
                packed = self._take_prepared(blob, tmp)
                if packed is None:
                    with open(blob, "rb") as fh:
                        packed = unpack(fh, tmp, what=what)
                if fsops.rename_new(tmp, target):
                    self.stats.files += packed.files
                    self.stats.bytes += packed.bytes
                ok = True
            except RemoteError as exc:
                self.stats.skipped.append(f"{what}: {exc.message}")
            finally:
                if os.path.lexists(tmp):
                    fsops.rmtree(tmp)
        self.archives[ident] = ok
        return ok

    def _take_prepared(self, blob: Path, tmp: Path) -> Packed | None:
        """Move the archive unpacked beside `blob` to `tmp` (a temp name inside archive-v0); None when there is
        none, or when it is on another file system (then the caller unpacks the blob itself)."""
        prepared = self.prepared.pop(blob, None)
        if prepared is None or not prepared.folder.is_dir():
            return None
        try:
            os.rename(prepared.folder, tmp)
        except OSError:
            return None
        return prepared.packed

    def _put(self, target: Path, data: bytes) -> None:
        fsops.write_atomic(target, data)
        self.stats.files += 1
        self.stats.bytes += len(data)

    # -- a downloaded wheel: archive, then `.msgpack` and link, then the `.http` pointer

    def _wheel(self, item: Pulled) -> None:
        meta, files = item.entry.meta, item.entry.files
        check_wheel(meta, files, self.buckets)
        folder_rel, group, ident = meta["path"], meta["group"], meta["archive"]
        folder = self.cache / folder_rel
        if _group_valid(folder, group):
            self.stats.kept_existing += 1
            return
        if not self._archive(ident, item.blobs.get("archive"), f"{item.entry.namespace}/{item.entry.key}"):
            self._skip(item, "its archive could not be installed")
            return
        fsops.makedirs(folder)
        if "msgpack" in files:
            self._put(folder / f"{group}.msgpack", files["msgpack"])
        put_link(folder / group, link_text(folder_rel, ident))
        self._put(folder / meta["pointer"], files["pointer"])
        self.stats.entries += 1
        self.stats.installed.append((item.entry.namespace, item.entry.key))

    # -- wheels built from one sdist: one revision folder, then `revision.http`

    def _builds(self, rel: str, items: list[Pulled]) -> None:
        version = self.cache / rel
        if any((version / name).exists() for name in SDIST_POINTERS):
            self.stats.kept_existing += len(items)
            return
        good: list[Pulled] = []
        for item in items:
            try:
                check_build(item.entry.meta, item.entry.files, self.buckets)
                good.append(item)
            except EntryProblem as exc:
                self._skip(item, str(exc))
        if not good:
            return
        # Builds pushed by different agents name different revisions: one is chosen, the rest of the
        # builds go into it (they are of the same sdist, by its sha256).
        revision = sorted(Counter(i.entry.meta["revision"] for i in good).items(), key=lambda c: (-c[1], c[0]))[0][0]
        pointer = next(i.entry.files["pointer"] for i in good if i.entry.meta["revision"] == revision)
        target = version / revision
        if os.path.lexists(target):
            for item in good:
                self._skip(item, f"{rel}/{revision} is there without its pointer (being written?)")
            return
        fsops.makedirs(version)
        tmp = fsops.temp_sibling(target)
        installed: list[Pulled] = []
        try:
            fsops.mkdir(tmp)
            for item in good:
                meta = item.entry.meta
                where = f"{item.entry.namespace}/{item.entry.key}"
                if not self._archive(meta["archive"], item.blobs.get("archive"), where):
                    self._skip(item, "its archive could not be installed")
                    continue
                shard = meta.get("shard", "")
                folder = tmp / shard if shard else tmp
                fsops.makedirs(folder)
                if os.path.lexists(folder / meta["link"]):
                    continue  # the same build from two agents
                if "metadata" in item.entry.files and not (folder / "metadata.msgpack").exists():
                    self._put(folder / "metadata.msgpack", item.entry.files["metadata"])
                shard_rel = f"{rel}/{revision}" + (f"/{shard}" if shard else "")
                put_link(folder / meta["link"], link_text(shard_rel, meta["archive"]))
                installed.append(item)
            if not installed or not fsops.rename_new(tmp, target):
                return
        finally:
            if os.path.lexists(tmp):
                fsops.rmtree(tmp)
        self._put(version / "revision.http", pointer)
        self.stats.entries += len(installed)
        self.stats.installed.extend((i.entry.namespace, i.entry.key) for i in installed)

    # -- an index listing: the newer copy wins, as in merge

    def _listing(self, item: Pulled) -> None:
        meta = item.entry.meta
        check_listing(meta, self.buckets)
        target = self.cache / meta["path"]
        try:
            if os.stat(target).st_mtime_ns >= meta["mtime_ns"]:
                self.stats.kept_existing += 1
                return
        except FileNotFoundError:
            pass
        if "listing" in item.entry.files:
            data = item.entry.files["listing"]
        elif "listing" in item.blobs:
            data = item.blobs["listing"].read_bytes()
        else:
            raise EntryProblem("no listing in it")
        fsops.makedirs(target.parent)
        try:
            self._put(target, data)
        except StoreError:
            self._skip(item, "the local listing is held open; kept")
            return
        with contextlib.suppress(OSError, StoreError):
            fsops.touch(target, ns=(meta["mtime_ns"], meta["mtime_ns"]))
        self.stats.entries += 1
        self.stats.installed.append((item.entry.namespace, item.entry.key))


def present_wheel(cache: Path, meta: Mapping[str, Any]) -> bool:
    """The cache already has this wheel's group, with its archive."""
    return _group_valid(cache / str(meta.get("path", "")), str(meta.get("group", "")))


def present_build(cache: Path, meta: Mapping[str, Any]) -> bool:
    """The cache has a revision pointer for this sdist version (then its own builds stay)."""
    version = cache / str(meta.get("path", ""))
    return any((version / name).exists() for name in SDIST_POINTERS)


def present_listing(cache: Path, meta: Mapping[str, Any]) -> bool:
    try:
        return os.stat(cache / str(meta.get("path", ""))).st_mtime_ns >= int(meta.get("mtime_ns", 0))
    except (OSError, ValueError, TypeError):
        return False

