"""uv's cache layout (checked against uv 0.13.8): buckets, pointers, wheel groups, links and revisions.

- `archive-v0/<id>/` is an unpacked wheel (or a cached venv), immutable once renamed in.
- A wheel group in `wheels-vN/.../<name>/` is `<key>` (a link to its archive: a relative symlink on
  POSIX, absolute before uv 0.11.17, a small text file `archive-v0/<id>` on Windows), `<key>.http` or
  `<key>.rev` (the pointer uv trusts) and `<key>.msgpack`.
- An sdist version folder `sdists-vN/.../<version>/` has a `revision.http`/`revision.rev` pointer to a
  sibling revision folder, which holds the sources, the built wheel and a link to its unpacked archive.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ci_cache import fsops, locks, osapi, store

ARCHIVE_BUCKET = "archive-v0"
POINTER_SUFFIXES = (".http", ".rev")
SDIST_POINTERS = ("revision.http", "revision.rev")
ROOT_LOCK = ".lock"
# The deepest path uv makes below its cache root, roughly: a wheels pointer of a long project name.
DEEPEST_SUFFIX = 170
# How long seed and merge wait for `uv cache clean`/`prune` to release uv's root lock.
UV_LOCK_TIMEOUT = 300.0

_GROUP_SUFFIXES = (*POINTER_SUFFIXES, ".msgpack", ".lock")
_NEVER_PREFIXES = ("builds-v", "environments-v")
_NEVER_NAMES = frozenset({".lock", "CACHEDIR.TAG", ".gitignore", ".git"})
_BUCKET = re.compile(r"^([a-z-]+)-v(\d+)$")
_KINDS = {"wheels": "wheels", "sdists": "sdists", "simple": "index", "flat-index": "index",
          "interpreter": "interpreter"}
_LINK_TEXT = re.compile(r"archive-v0[\\/]+([A-Za-z0-9_-]{4,64})\s*$")
# A Windows "link" is a small text file; anything bigger is content.
_MAX_LINK_FILE = 512
# What an archive or revision id looks like inside a msgpack pointer.
_ID = re.compile(rb"^[A-Za-z0-9_-]{8,32}$")


# ---------------------------------------------------------------------------------------------------
# Buckets.


def bucket_family(name: str) -> str | None:
    """A versioned bucket's name without its version (`wheels` for `wheels-v7`); None for anything else."""
    match = _BUCKET.match(name)
    return match.group(1) if match else None


def bucket_kind(name: str) -> str:
    """What a top-level entry of a uv cache is, for seeding and merging."""
    if name in _NEVER_NAMES or fsops.is_temp_name(name) or name.startswith(_NEVER_PREFIXES):
        return "never"
    if name == ARCHIVE_BUCKET:
        return "archive"
    family = bucket_family(name)
    if family is None:
        return "never"  # not a bucket uv made: leave it alone
    return _KINDS.get(family, "other")


def walk_dirs(top: Path, rel_top: str) -> Iterator[tuple[Path, str, set[str]]]:
    """(folder, its path relative to the cache root, the names of the non-dir entries in it), temp
    entries left out."""
    stack = [(top, rel_top)]
    while stack:
        folder, rel = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        names: set[str] = set()
        for entry in entries:
            if fsops.is_temp_name(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), f"{rel}/{entry.name}" if rel else entry.name))
            else:
                names.add(entry.name)
        yield folder, rel, names


# ---------------------------------------------------------------------------------------------------
# Archives and the links to them.


def archive_ids(cache: Path) -> list[str]:
    """The archives in a uv cache (the folders of `archive-v0`, temp dirs left out)."""
    try:
        entries = list(os.scandir(cache / ARCHIVE_BUCKET))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if not fsops.is_temp_name(e.name) and e.is_dir(follow_symlinks=False))


def archive_id_of_link(path: str, *, is_symlink: bool) -> str | None:
    """The archive a wheel or built-wheel link names: a symlink on POSIX, a text file on Windows."""
    try:
        if is_symlink:
            target = os.readlink(path).replace("\\", "/").rstrip("/")
            parent, _, last = target.rpartition("/")
            return last if parent.endswith(ARCHIVE_BUCKET) else None
        if os.path.getsize(path) > _MAX_LINK_FILE:
            return None
        with open(path, "rb") as fh:
            match = _LINK_TEXT.search(fh.read().decode("utf-8", "replace"))
    except OSError:
        return None
    return match.group(1) if match else None


def linked_archive(path: Path) -> str | None:
    """The archive the link at `path` names, whichever kind of link it is; None when it names none."""
    return archive_id_of_link(str(path), is_symlink=path.is_symlink())


def may_be_link(name: str) -> bool:
    """Whether a file in a wheels or sdists bucket can be a link: not a pointer, metadata, lock or wheel."""
    return not name.endswith(_GROUP_SUFFIXES) and not name.endswith(".whl")


def folder_links(folder: Path, names: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(name, archive id) of each link among a folder's non-dir entries."""
    for name in sorted(names):
        path = folder / name
        if path.is_symlink() or may_be_link(name):
            archive = linked_archive(path)
            if archive:
                yield name, archive


def links_below(top: Path) -> Iterator[tuple[Path, str]]:
    """Every link below `top` (an sdist version or revision folder) with the archive it names."""
    for folder, _rel, names in walk_dirs(top, ""):
        for name, archive in folder_links(folder, names):
            yield folder / name, archive


def retarget(link_text: str, old_root: Path, new_root: Path) -> str:
    """Relative links stay as they are; absolute ones (uv < 0.11.17) are moved to the new cache."""
    if not os.path.isabs(link_text):
        return link_text
    try:
        rel = Path(link_text).relative_to(old_root)
    except ValueError:
        return link_text
    return str(new_root / rel)


def retarget_tree_links(top: Path, old_root: Path, new_root: Path) -> None:
    """Every symlink below `top` that names `old_root` absolutely, pointed at `new_root` instead."""
    for _rel, entry in fsops.walk_files(top):
        if entry.is_symlink():
            text = os.readlink(entry.path)
            new = retarget(text, old_root, new_root)
            if new != text:
                fsops.unlink(Path(entry.path))
                fsops.symlink(new, entry.path)


# ---------------------------------------------------------------------------------------------------
# Pointers: wheel groups and sdist revisions.


def group_keys(names: Iterable[str]) -> set[str]:
    """The wheel groups among a folder's file names: every `<key>` that has a pointer."""
    keys = set()
    for name in names:
        for suffix in POINTER_SUFFIXES:
            if name.endswith(suffix):
                keys.add(name[: -len(suffix)])
    return keys


def group_pointers(key: str) -> tuple[str, ...]:
    """The names the pointer of the group `key` can have, `.http` first."""
    return tuple(key + s for s in POINTER_SUFFIXES)


def group_pointer(key: str, names: Iterable[str]) -> str | None:
    """The pointer file of the group `key`, if the folder has one."""
    present = set(names)
    return next((p for p in group_pointers(key) if p in present), None)


def group_members(key: str) -> tuple[str, ...]:
    """A wheel group's files, pointers first: the order to delete them in, since uv trusts the pointer."""
    return (*group_pointers(key), f"{key}.msgpack", key)


def sdist_pointer(names: Iterable[str]) -> str | None:
    """The revision pointer among an sdist version folder's file names, if it is one."""
    present = set(names)
    return next((p for p in SDIST_POINTERS if p in present), None)


def first_id(data: bytes) -> str | None:
    """The first archive- or revision-id-like msgpack string in a pointer file: what uv installs from."""
    i = 0
    while i < len(data):
        b = data[i]
        length, start = -1, i + 1
        if 0xA0 <= b <= 0xBF:
            length = b & 0x1F
        elif b == 0xD9 and i + 1 < len(data):
            length, start = data[i + 1], i + 2
        if length > 0:
            chunk = data[start:start + length]
            if _ID.match(chunk):
                return chunk.decode()
            i = start + length
            continue
        i += 1
    return None


# ---------------------------------------------------------------------------------------------------
# Around the cache: its root lock, ci-cache's side store, the uv binary.


def hold_root_lock(cache: Path, *, exclusive: bool = False, timeout: float | None = None,
                   purpose: str = "uv's cache lock; a `uv cache clean` or `prune` is running") -> osapi.FileLockHandle:
    """uv's own `<cache>/.lock`. Held shared, a concurrent `uv cache prune`/`clean` waits for us; held
    exclusive, no uv command runs on the cache meanwhile. `timeout` defaults to UV_LOCK_TIMEOUT."""
    fsops.makedirs(cache)
    handle, _ = locks.acquire(cache / ROOT_LOCK, timeout=UV_LOCK_TIMEOUT if timeout is None else timeout,
                              shared=not exclusive, purpose=purpose)
    return handle


def interpreter_store(shared: Path) -> Path:
    """Where ci-cache keeps uv's interpreter queries: beside the shared uv cache, not in it."""
    return store.beside(shared, "interpreters")


def find_uv(env: Mapping[str, str]) -> str | None:
    import shutil

    return shutil.which("uv", path=env.get("PATH"))
