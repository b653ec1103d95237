"""From a uv cache to remote entries: one per downloaded wheel, one per wheel built from an sdist, one per
index listing; each archive packed into one blob named by the sha256 of its bytes.

Only what another agent can use is exported: wheels and sdists fetched over HTTP, whose pointers carry
the file's sha256. A local file's `.rev` pointer is valid only beside that file, so it stays local.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ci_cache.remote import archive
from ci_cache.tools.base import Built, Export, ExportPlan
from ci_cache.tools.uv import remote_names as names
from ci_cache.tools.uv.layout import (
    ARCHIVE_BUCKET,
    bucket_family,
    bucket_kind,
    folder_links,
    group_keys,
    group_pointer,
    linked_archive,
    sdist_pointer,
    walk_dirs,
)
from ci_cache.tools.uv.pointers import PointerError, revision_pointer, wheel_pointer

P = TypeVar("P")
# Listings up to this size travel inside their entry; bigger ones (thousands of versions) as a blob.
INLINE_LISTING = 256 << 10


def _pack(folder: Path) -> bytes:
    data, _packed = archive.pack_bytes(folder)
    return data


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class Exporter:
    """The export plan of one cache."""

    def __init__(self, cache: Path, *, today: str | None = None) -> None:
        self.cache = cache
        self.today = today or datetime.now(UTC).strftime("%Y%m%d")
        self.plan = ExportPlan()
        self.listed: set[tuple[str, str]] = set()  # (name, source token) whose listing to export

    def run(self, groups: Sequence[str] | None) -> ExportPlan:
        for rel, kind, names_here in self._targets(groups):
            if kind == "wheels":
                folder_rel, _, key = rel.rpartition("/")
                self._wheel(folder_rel, key, names_here)
            else:
                self._sdist(rel, names_here)
        self._listings()
        self.plan.roots = sorted({item.namespace.split("/", 1)[0] for item in self.plan.items})
        return self.plan

    def _targets(self, groups: Sequence[str] | None) -> Iterator[tuple[str, str, set[str]]]:
        """(cache-relative group or version folder, bucket kind, the names in its folder)."""
        if groups is None:
            yield from _walk_groups(self.cache)
            return
        for rel in groups:
            kind = bucket_kind(rel.split("/", 1)[0])
            if kind not in ("wheels", "sdists") or ".." in rel.split("/"):
                continue
            folder = self.cache / (rel.rpartition("/")[0] if kind == "wheels" else rel)
            try:
                files = {e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)}
            except OSError:
                self.plan.skipped.append(f"{rel}: not in the cache")
                continue
            yield rel, kind, files

    def _skip(self, rel: str, why: str) -> None:
        self.plan.skipped.append(f"{rel}: {why}")

    def _shared_pointer(self, rel: str, folder: Path, pointer: str | None, local: str,
                        parse: Callable[[str, bytes], P]) -> tuple[bytes, P] | None:
        """A pointer's bytes and what they say, if another agent can use it; else None (and why, noted)."""
        if pointer is None:
            self._skip(rel, "no pointer")
            return None
        if pointer.endswith(".rev"):
            self._skip(rel, f"{local}: its pointer is only valid beside that file")
            return None
        data = _read(folder / pointer)
        if data is None:
            self._skip(rel, "its pointer cannot be read")
            return None
        try:
            return data, parse(pointer, data)
        except PointerError as exc:
            self._skip(rel, f"unreadable pointer ({exc})")
            return None

    # -- downloaded wheels: a group `<key>`, `<key>.http`, `<key>.msgpack`

    def _wheel(self, folder_rel: str, key: str, files: set[str]) -> None:
        rel = f"{folder_rel}/{key}"
        parts = folder_rel.split("/")
        pointer = group_pointer(key, files)
        folder = self.cache / folder_rel
        read = self._shared_pointer(rel, folder, pointer, "a local file's wheel", wheel_pointer)
        if read is None or pointer is None:
            return None
        data, found = read
        wheel = names.parse_wheel(found.filename)
        token = names.source_token(parts[1:-1])
        problem = (
            "no sha256 in its pointer" if found.sha256 is None else
            f"archive version {found.archive_version}, not {ARCHIVE_BUCKET}" if found.archive_version != 0 else
            "its pointer names another wheel" if wheel is None or not names.is_group_of(key, wheel)
            or wheel.name != parts[-1] else
            "not under a pypi, index or url folder" if token is None else
            "its link names another archive than its pointer" if linked_archive(folder / key) != found.archive else
            "its archive is missing" if not (self.cache / ARCHIVE_BUCKET / found.archive).is_dir() else
            f"version {wheel.version!r} cannot be a remote name" if not names.segment_ok(wheel.version) else
            None)
        if problem is not None:
            return self._skip(rel, problem)
        assert wheel is not None and token is not None and found.sha256 is not None
        archive_dir = self.cache / ARCHIVE_BUCKET / found.archive
        meta: dict[str, Any] = {
            "kind": "wheel", "path": folder_rel, "group": key, "pointer": pointer, "archive": found.archive,
            "filename": found.filename, "sha256": found.sha256, "size": found.size,
        }
        msgpack = _read(folder / f"{key}.msgpack")

        def build() -> Built:
            files_out = {"pointer": data} | ({"msgpack": msgpack} if msgpack is not None else {})
            return Built({"archive": _pack(archive_dir)}, files_out, meta)

        namespace = f"{names.wheels_root(parts[0], ARCHIVE_BUCKET)}/{wheel.name}/{wheel.version}"
        self.plan.items.append(Export(namespace, names.wheel_key(found.sha256, token), build))
        self.listed.add((wheel.name, token))
        return None

    # -- wheels built from sdists: `<version>/revision.http` and `<version>/<revision>/[<shard>/]<link>`

    def _sdist(self, rel: str, files: set[str]) -> None:
        parts = rel.split("/")
        pointer = sdist_pointer(files)
        folder = self.cache / rel
        read = self._shared_pointer(rel, folder, pointer, "a local sdist", revision_pointer)
        if read is None or pointer is None:
            return None
        data, found = read
        revision = folder / found.revision
        if found.sha256 is None:
            return self._skip(rel, "no sha256 in its pointer")
        if not revision.is_dir():
            return self._skip(rel, f"its revision {found.revision} is missing")
        by_path = len(parts) >= 4 and parts[1] in ("pypi", "index")
        token = names.source_token(parts[1:-2] if by_path else parts[1:])
        if token is None:
            return self._skip(rel, "not under a pypi, index or url folder")
        builds = 0
        for shard, link, archive_id in _builds(revision):
            wheel = names.parse_wheel(link + ".whl")
            where = f"{rel}/{found.revision}/{shard + '/' if shard else ''}{link}"
            if wheel is None or (by_path and (wheel.name, wheel.version) != (parts[-2], parts[-1])):
                self._skip(where, "its name is not a wheel of this sdist")
                continue
            if not (self.cache / ARCHIVE_BUCKET / archive_id).is_dir():
                self._skip(where, "its archive is missing")
                continue
            if not names.segment_ok(wheel.version):
                self._skip(where, f"version {wheel.version!r} cannot be a remote name")
                continue
            self._build_item(_Build(rel, pointer, data, found.sha256, found.revision, token, shard, link, archive_id,
                                    wheel))
            builds += 1
        if not builds:
            return self._skip(rel, "no built wheel in its revision")
        return None

    def _build_item(self, b: _Build) -> None:
        archive_dir = self.cache / ARCHIVE_BUCKET / b.archive
        metadata = _read(self.cache / b.rel / b.revision / b.shard / "metadata.msgpack")
        filename = b.link + ".whl"
        meta: dict[str, Any] = {
            "kind": "build", "path": b.rel, "pointer": b.pointer, "revision": b.revision, "shard": b.shard,
            "link": b.link, "archive": b.archive, "filename": filename, "sha256": b.sha256,
        }

        def build() -> Built:
            files_out = {"pointer": b.data} | ({"metadata": metadata} if metadata is not None else {})
            return Built({"archive": _pack(archive_dir)}, files_out, meta)

        namespace = f"{names.builds_root(b.rel.split('/', 1)[0], ARCHIVE_BUCKET)}/{b.wheel.name}/{b.wheel.version}"
        self.plan.items.append(Export(namespace, names.build_key(b.sha256, b.token, b.shard, filename), build))
        self.listed.add((b.wheel.name, b.token))

    # -- index listings: `simple-vN/<source>/<name>.rkyv`, newest per day

    def _listings(self) -> None:
        simple = [b for b in sorted(os.listdir(self.cache)) if bucket_family(b) == "simple"] \
            if self.cache.is_dir() else []
        for name, token in sorted(self.listed):
            for bucket in simple:
                rel = "/".join([bucket, *names.source_parts(token), f"{name}.rkyv"])
                path = self.cache / rel
                try:
                    mtime = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                self.plan.items.append(Export(f"{names.listings_root(bucket)}/{name}",
                                              names.listing_key(token, self.today), _listing_builder(path, rel, mtime)))


def _walk_groups(cache: Path) -> Iterator[tuple[str, str, set[str]]]:
    """Every wheel group and sdist version folder of the cache, from directory listings alone."""
    for bucket in sorted(os.listdir(cache)) if cache.is_dir() else []:
        kind = bucket_kind(bucket)
        if kind not in ("wheels", "sdists"):
            continue
        for _folder, rel, files in walk_dirs(cache / bucket, bucket):
            if kind == "wheels":
                yield from ((f"{rel}/{key}", kind, files) for key in sorted(group_keys(files)))
            elif sdist_pointer(files):
                yield rel, kind, files


def groups(cache: Path) -> list[str]:
    """The cache-relative names of its wheel groups and sdist version folders: what `Exporter.run` takes."""
    return sorted(rel for rel, _kind, _files in _walk_groups(cache))


@dataclass(frozen=True)
class _Build:
    """One build found in a revision folder, and where its version folder and pointer are."""

    rel: str
    pointer: str
    data: bytes
    sha256: str
    revision: str
    token: str
    shard: str
    link: str
    archive: str
    wheel: names.WheelName


def _listing_builder(path: Path, rel: str, mtime: int) -> Callable[[], Built]:
    def build() -> Built:
        data = path.read_bytes()
        meta = {"kind": "listing", "path": rel, "mtime_ns": mtime}
        if len(data) <= INLINE_LISTING:
            return Built({}, {"listing": data}, meta)
        return Built({"listing": data}, {}, meta)

    return build


def _builds(revision: Path) -> Iterator[tuple[str, str, str]]:
    """(config-settings folder or "", link name, archive id) of every build in a revision folder.

    `src/` (the unpacked sdist) is not looked into: it holds sources, never a build.
    """
    folders = [("", revision)]
    for entry in sorted(os.scandir(revision), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and entry.name != "src" and not entry.name.startswith("."):
            folders.append((entry.name, Path(entry.path)))
    for shard, folder in folders:
        files = {e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)}
        for link, archive_id in folder_links(folder, files):
            yield shard, link, archive_id
