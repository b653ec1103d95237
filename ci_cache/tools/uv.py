"""uv's cache: seed a job's cache from the shared one, and merge the job's new entries back.

The rules (DESIGN.md, checked against uv 0.13.8):
- `archive-v0/<id>/` is immutable once renamed in and holds nearly all the bytes: link its files.
- Pointer files (`.http`, `.rev`, `.msgpack`), links and index files can be rewritten in place by uv:
  copy them, so that nothing a job does reaches the shared cache.
- Never seed or merge temp dirs, locks, root markers, `builds-v*`, `environments-v*`, `interpreter-v*`.
- Merge archives before the pointers that name them, each renamed in whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_cache import fsops, locks, log, osapi
from ci_cache.errors import StoreError
from ci_cache.keyfiles import normalize
from ci_cache.tools.base import MergeRequest, MergeStats, SeedRequest, SeedStats

ARCHIVE_BUCKET = "archive-v0"
POINTER_SUFFIXES = (".http", ".rev")
GROUP_SUFFIXES = (".http", ".rev", ".msgpack", ".lock")
SDIST_POINTERS = ("revision.http", "revision.rev")
ROOT_LOCK = ".lock"
_NEVER_PREFIXES = ("builds-v", "environments-v")
_NEVER_NAMES = frozenset({".lock", "CACHEDIR.TAG", ".gitignore", ".git"})
_LINK_TEXT = re.compile(r"archive-v0[\\/]+([A-Za-z0-9_-]{4,64})\s*$")
_BUCKET = re.compile(r"^([a-z-]+)-v(\d+)$")
# A Windows "link" is a small text file; anything bigger is content.
_MAX_LINK_FILE = 512
# Interpreter queries kept for new jobs (one small file per interpreter path).
MAX_INTERPRETERS = 256
# How long seed and merge wait for `uv cache clean`/`prune` to release uv's root lock.
UV_LOCK_TIMEOUT = 300.0


def bucket_kind(name: str) -> str:
    """What a top-level entry of a uv cache is, for seeding and merging."""
    if name in _NEVER_NAMES or fsops.is_temp_name(name) or name.startswith(_NEVER_PREFIXES):
        return "never"
    if name == ARCHIVE_BUCKET:
        return "archive"
    match = _BUCKET.match(name)
    if not match:
        return "never"  # not a bucket uv made: leave it alone
    return {"wheels": "wheels", "sdists": "sdists", "simple": "index", "flat-index": "index",
            "interpreter": "interpreter"}.get(
        match.group(1), "other"
    )


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


def _is_group_link_name(name: str) -> bool:
    return not name.endswith(GROUP_SUFFIXES) and not name.endswith(".whl")


@dataclass
class Manifest:
    """What seeding put into a job's cache: merge takes what differs from it."""

    archives: set[str] = field(default_factory=set)
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def unchanged(self, rel: str, stat: os.stat_result) -> bool:
        return self.files.get(rel) == (stat.st_size, stat.st_mtime_ns)

    def save(self, path: Path) -> None:
        data = {"archives": sorted(self.archives), "files": {k: list(v) for k, v in self.files.items()}}
        fsops.write_atomic(path, json.dumps(data).encode())

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cls()
        return cls(set(data.get("archives", ())), {k: (v[0], v[1]) for k, v in data.get("files", {}).items()})


class UvTool:
    name = "uv"
    commands: tuple[str, ...] = ("uv", "uvx")
    has_shared_cache = True

    def env(self, cache_dir: Path, *, windows: bool, link_mode: str | None) -> Mapping[str, str]:
        env = {"UV_CACHE_DIR": str(cache_dir)}
        if link_mode:
            env["UV_LINK_MODE"] = link_mode
        return env

    def seed(self, request: SeedRequest) -> SeedStats:
        return _Seeder(request).run()

    def merge(self, request: MergeRequest) -> MergeStats:
        return _Merger(request).run()


def hold_root_lock(cache: Path) -> Any:
    """uv's own `<cache>/.lock`, held shared: a concurrent `uv cache prune`/`clean` must wait for us."""
    cache.mkdir(parents=True, exist_ok=True)
    handle, _ = locks.acquire(cache / ROOT_LOCK, timeout=UV_LOCK_TIMEOUT, shared=True,
                              purpose="uv's cache lock; a `uv cache clean` or `prune` is running")
    return handle


# ---------------------------------------------------------------------------------------------------
# Seeding.


class _Seeder:
    def __init__(self, request: SeedRequest) -> None:
        self.req = request
        self.stats = SeedStats(scope="full" if request.packages is None else "key files")
        self.manifest = Manifest()
        self.archives_wanted: set[str] = set()
        # Metadata copies wait here so that they run while `cp -al` links the archives.
        self.copies: list[tuple[Path, Path, str]] = []

    def run(self) -> SeedStats:
        shared, job = self.req.shared, self.req.job
        job.mkdir(parents=True, exist_ok=True)
        if not shared.is_dir():
            self.manifest.save(self.req.manifest)
            return self.stats
        with hold_root_lock(shared):
            buckets = sorted(os.listdir(shared))
            names = self.req.packages
            if names is None:
                self._seed_everything(buckets)
            else:
                self._seed_packages(buckets, set(names))
        self._seed_interpreters()
        self.manifest.save(self.req.manifest)
        return self.stats

    def _seed_interpreters(self) -> None:
        """Copy the interpreter queries other jobs made, so uv need not run each Python again."""
        store = interpreter_store(self.req.shared)
        if not store.is_dir():
            return
        for rel, entry in fsops.walk_files(store):
            if bucket_kind(rel.split("/", 1)[0]) == "interpreter" and not fsops.is_lock_or_temp(entry.name):
                target = self.req.job / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self._copy_now(Path(entry.path), target, rel)

    def _seed_everything(self, buckets: list[str]) -> None:
        for bucket in buckets:
            kind = bucket_kind(bucket)
            if kind in ("wheels", "sdists", "index", "other"):
                self._copy_meta(self.req.shared / bucket, self.req.job / bucket, bucket, kind)
        self._seed_archives(self.archives_wanted)
        self._flush_copies()

    def _seed_packages(self, buckets: list[str], wanted: set[str]) -> None:
        """Seed only what the named packages need, following their Requires-Dist to a closure."""
        done: set[str] = set()
        first = True
        while wanted:
            for bucket in buckets:
                kind = bucket_kind(bucket)
                if kind in ("wheels", "sdists"):
                    self._seed_named_dirs(bucket, kind, wanted, include_unnamed=first)
                elif kind == "index":
                    self._seed_named_index(bucket, wanted, include_unnamed=first)
                elif kind == "other" and first:
                    self._copy_meta(self.req.shared / bucket, self.req.job / bucket, bucket, kind)
            fresh = self.archives_wanted - self.manifest.archives
            self._seed_archives(fresh)
            self._flush_copies()
            done |= wanted
            wanted = {dep for archive in fresh for dep in _requires(self.req.job / ARCHIVE_BUCKET / archive)}
            wanted -= done
            first = False

    def _seed_named_dirs(self, bucket: str, kind: str, names: set[str], *, include_unnamed: bool) -> None:
        """`<bucket>/pypi/<name>` and `<bucket>/index/<hash>/<name>`; url/path/git entries once, whole."""
        for rel in _named_dirs(self.req.shared / bucket, names, include_unnamed=include_unnamed):
            src = self.req.shared / bucket / rel
            if src.is_dir():
                dst = self.req.job / bucket / rel
                dst.mkdir(parents=True, exist_ok=True)
                self._copy_meta(src, dst, f"{bucket}/{rel}", kind)

    def _seed_named_index(self, bucket: str, names: set[str], *, include_unnamed: bool) -> None:
        base = self.req.shared / bucket
        for rel in _named_dirs(base, set(), include_unnamed=True):
            folder = base / rel
            if not folder.is_dir():
                continue
            if include_unnamed and not rel.startswith(("pypi", "index/")):
                self._copy_meta(folder, self.req.job / bucket / rel, f"{bucket}/{rel}", "index")
                continue
            for name in names:
                src = folder / f"{name}.rkyv"
                if src.exists():
                    dst = self.req.job / bucket / rel / src.name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    self._copy_file(src, dst, f"{bucket}/{rel}/{src.name}")

    def _copy_meta(self, src: Path, dst: Path, rel: str, kind: str) -> None:
        """Copy a metadata tree and recreate its links; collect the archives the links name."""
        dst.mkdir(parents=True, exist_ok=True)
        with os.scandir(src) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            if name.endswith(".lock") or fsops.is_temp_name(name):
                continue
            child_rel = f"{rel}/{name}"
            target = dst / name
            if entry.is_symlink():
                archive = archive_id_of_link(entry.path, is_symlink=True)
                if archive:
                    self.archives_wanted.add(archive)
                if not os.path.lexists(target):
                    os.symlink(_retarget(os.readlink(entry.path), self.req.shared, self.req.job), target)
            elif entry.is_dir(follow_symlinks=False):
                self._copy_meta(Path(entry.path), target, child_rel, kind)
            else:
                if kind in ("wheels", "sdists") and _is_group_link_name(name):
                    archive = archive_id_of_link(entry.path, is_symlink=False)
                    if archive:
                        self.archives_wanted.add(archive)
                # Everything outside archive-v0 is copied, built wheels included: only archives are
                # immutable by uv's contract, and a build backend may reopen its wheel for writing.
                self._copy_file(Path(entry.path), target, child_rel)

    def _copy_file(self, src: Path, dst: Path, rel: str) -> None:
        self.copies.append((src, dst, rel))

    def _flush_copies(self) -> None:
        copies, self.copies = self.copies, []
        for src, dst, rel in copies:
            self._copy_now(src, dst, rel)

    def _copy_now(self, src: Path, dst: Path, rel: str) -> None:
        fsops.copy_file(src, dst)
        st = os.stat(dst)
        self.manifest.files[rel] = (st.st_size, st.st_mtime_ns)
        self.stats.files += 1
        self.stats.copied += 1
        self.stats.bytes += st.st_size

    def _seed_archives(self, ids: Iterable[str]) -> None:
        archive_src = self.req.shared / ARCHIVE_BUCKET
        archive_dst = self.req.job / ARCHIVE_BUCKET
        archive_dst.mkdir(parents=True, exist_ok=True)
        todo = [a for a in sorted(ids) if a not in self.manifest.archives and (archive_src / a).is_dir()
                and not (archive_dst / a).exists()]
        count = self._link_archives(todo, archive_src, archive_dst)
        self.stats.files += count.files
        self.stats.bytes += count.bytes
        self.stats.linked += count.linked
        self.stats.copied += count.files - count.linked
        self.stats.entries += len(todo)
        self.manifest.archives.update(todo)
        if self.req.packages is not None:
            # The job named what it needs (key files): the archive's folder mtime records this use,
            # for `ci-cache prune`'s LRU order. A full seed says nothing about use.
            for archive in todo:
                with contextlib.suppress(OSError):
                    os.utime(archive_src / archive)

    def _link_archives(self, todo: list[str], archive_src: Path, archive_dst: Path) -> fsops.TreeCount:
        """Link the archives in bulk with `cp -al` where the system has it, copying the metadata
        meanwhile; else (Windows, or if cp fails) in Python."""
        if self.req.link:
            procs = osapi.start_bulk_link([str(archive_src / a) for a in todo], str(archive_dst))
            if procs is not None:
                try:
                    self._flush_copies()  # on this core, while cp works on another
                    count = fsops.TreeCount(files=sum(_count_files(archive_src / a) for a in todo))
                    count.linked = count.files
                finally:
                    failed = [p for p in procs if p.wait() != 0]  # never leave cp writing behind us
                if not failed:
                    return count
                errors = b"".join(p.stderr.read() if p.stderr else b"" for p in failed).decode(errors="replace")
                log.warn(f"cp -al failed ({errors.strip()[-200:]}); linking in Python instead")
                for archive in todo:
                    fsops.rmtree(archive_dst / archive)
        return self._clone_archives(todo, archive_src, archive_dst)

    def _clone_archives(self, archives: list[str], archive_src: Path, archive_dst: Path) -> fsops.TreeCount:
        count = fsops.TreeCount()
        for archive in archives:
            fsops.clone_tree(archive_src / archive, archive_dst / archive, link=self.req.link, count=count)
        return count


def _count_files(top: Path) -> int:
    """Files below `top` (not dirs), from directory entries alone: no stat calls."""
    files = 0
    stack = [str(top)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    files += 1
    return files


def _named_dirs(bucket: Path, names: set[str], *, include_unnamed: bool) -> Iterator[str]:
    """Relative dirs under a wheels/sdists/simple bucket: the named packages' dirs and, when asked,
    the dirs that are not keyed by name (direct URLs, paths, git)."""
    try:
        kinds = sorted(os.listdir(bucket))
    except FileNotFoundError:
        return
    for kind in kinds:
        if kind.startswith(".") or not (bucket / kind).is_dir():
            continue
        if kind == "pypi":
            if not names:
                yield kind
            yield from (f"pypi/{n}" for n in sorted(names))
        elif kind == "index":
            for index_hash in sorted(os.listdir(bucket / kind)):
                if not names:
                    yield f"index/{index_hash}"
                yield from (f"index/{index_hash}/{n}" for n in sorted(names))
        elif include_unnamed:
            yield kind


def _requires(archive: Path) -> set[str]:
    """Names in the Requires-Dist of the wheel unpacked at `archive`."""
    names: set[str] = set()
    try:
        infos = [e for e in os.scandir(archive) if e.name.endswith(".dist-info")]
    except OSError:
        return names
    for info in infos:
        try:
            text = Path(info.path, "METADATA").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if not line.strip():
                break  # the body follows the headers
            if line.startswith("Requires-Dist:"):
                match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line[len("Requires-Dist:"):])
                if match:
                    names.add(normalize(match.group(1)))
    return names


def _retarget(link_text: str, old_root: Path, new_root: Path) -> str:
    """Relative links stay as they are; absolute ones (uv < 0.11.17) are moved to the new cache."""
    if not os.path.isabs(link_text):
        return link_text
    try:
        rel = Path(link_text).relative_to(old_root)
    except ValueError:
        return link_text
    return str(new_root / rel)


# ---------------------------------------------------------------------------------------------------
# Merging.


class _Merger:
    def __init__(self, request: MergeRequest) -> None:
        self.req = request
        self.manifest = Manifest.load(request.manifest)
        self.stats = MergeStats()
        self.archives_done: set[str] = set()

    def run(self) -> MergeStats:
        job, shared = self.req.job, self.req.shared
        if not job.is_dir():
            return self.stats
        shared.mkdir(parents=True, exist_ok=True)
        with hold_root_lock(shared):
            for bucket in sorted(os.listdir(job)):
                kind = bucket_kind(bucket)
                if kind == "wheels":
                    self._merge_wheels(bucket)
                elif kind == "sdists":
                    self._merge_sdists(bucket)
                elif kind == "index":
                    self._merge_index(bucket)
                elif kind == "other":
                    self._merge_other(bucket)
        self._keep_interpreters()
        return self.stats

    def _keep_interpreters(self) -> None:
        """Keep the job's interpreter queries beside the shared cache, never in it.

        uv keys them by the interpreter's absolute path and checks its mtime on use, so a stale one is
        only a miss; inside the shared cache, per-job venv paths would pile up forever. Here the
        newest MAX_INTERPRETERS stay, and each job starts with them.
        """
        store = interpreter_store(self.req.shared)
        for bucket in sorted(os.listdir(self.req.job)):
            if bucket_kind(bucket) != "interpreter":
                continue
            for rel, entry in fsops.walk_files(self.req.job / bucket):
                full_rel = f"{bucket}/{rel}"
                if fsops.is_lock_or_temp(entry.name) or self.manifest.unchanged(full_rel, entry.stat()):
                    continue
                target = store / full_rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self._put(Path(entry.path), target)
            _keep_newest(store / bucket, MAX_INTERPRETERS)

    # -- wheels: groups `<key>`, `<key>.http|.rev`, `<key>.msgpack`, taken whole.

    def _merge_wheels(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            for key in group_keys(names):
                pointer = next((key + s for s in POINTER_SUFFIXES if key + s in names), None)
                if pointer is None:
                    continue
                st = os.stat(folder / pointer)
                if self.manifest.unchanged(f"{rel}/{pointer}", st):
                    continue
                self._merge_group(folder, rel, key, pointer, names)

    def _merge_group(self, folder: Path, rel: str, key: str, pointer: str, names: set[str]) -> None:
        target_dir = self.req.shared / rel
        if _group_valid(target_dir, key):
            self.stats.kept_existing += 1
            return
        link_path = folder / key
        archive = None
        if key in names:
            archive = archive_id_of_link(str(link_path), is_symlink=link_path.is_symlink())
            if archive is None or not self._ensure_archive(archive):
                self.stats.skipped += 1
                return
        target_dir.mkdir(parents=True, exist_ok=True)
        # The pointer goes last: uv only trusts a group whose pointer exists.
        for name in (f"{key}.msgpack", key, pointer):
            if name in names:
                self._put(folder / name, target_dir / name)
        self.stats.entries += 1
        self.stats.details.append(f"{rel}/{key}")

    # -- sdists: `<version>/` with a revision pointer and revision folders.

    def _merge_sdists(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            pointer = next((p for p in SDIST_POINTERS if p in names), None)
            if pointer is None:
                continue
            if self.manifest.unchanged(f"{rel}/{pointer}", os.stat(folder / pointer)):
                continue
            target = self.req.shared / rel
            if (target / pointer).exists():
                self.stats.kept_existing += 1
                continue
            ok = True
            for entry in os.scandir(folder):
                if entry.is_dir(follow_symlinks=False) and not fsops.is_temp_name(entry.name):
                    ok = ok and self._merge_revision(Path(entry.path), target / entry.name)
            if not ok:
                self.stats.skipped += 1
                continue
            self._put(folder / pointer, target / pointer)
            self.stats.entries += 1
            self.stats.details.append(rel)

    def _merge_revision(self, src: Path, dst: Path) -> bool:
        if dst.exists():
            return True
        for sub_dir, _rel, names in walk_dirs(src, ""):
            for name in names:
                path = sub_dir / name
                if path.is_symlink() or (_is_group_link_name(name) and path.is_file()):
                    archive = archive_id_of_link(str(path), is_symlink=path.is_symlink())
                    if archive and not self._ensure_archive(archive):
                        return False
        self._stage_whole(src, dst, link=False, retarget_links=True)
        return True

    # -- archives: copied into a temp folder inside the target bucket, then renamed into place.

    def _ensure_archive(self, archive: str) -> bool:
        if archive in self.archives_done:
            return True
        src = self.req.job / ARCHIVE_BUCKET / archive
        dst = self.req.shared / ARCHIVE_BUCKET / archive
        if dst.is_dir():
            self.archives_done.add(archive)
            return True
        if not src.is_dir():
            return False
        self._stage_whole(src, dst, link=True)
        self.archives_done.add(archive)
        return True

    def _stage_whole(self, src: Path, dst: Path, *, link: bool, retarget_links: bool = False) -> bool:
        """Build `src` as a temp folder beside `dst`, then rename it in whole: readers see all or nothing.

        False when `dst` appeared meanwhile (a concurrent writer won; its copy is as good as ours).
        """
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = fsops.temp_sibling(dst)
        try:
            count = fsops.clone_tree(src, tmp, link=link, skip=fsops.is_lock_or_temp)
            if retarget_links:
                _retarget_tree_links(tmp, self.req.job, self.req.shared)
            if not fsops.rename_new(tmp, dst):
                return False
        finally:
            if tmp.exists():
                fsops.rmtree(tmp)
        self.stats.files += count.files
        self.stats.bytes += count.bytes
        return True

    # -- index files: add what is missing; the newer copy wins.

    def _merge_index(self, bucket: str) -> None:
        for folder, rel, names in walk_dirs(self.req.job / bucket, bucket):
            for name in names:
                if name.endswith(".lock"):
                    continue
                src = folder / name
                st = os.stat(src)
                if self.manifest.unchanged(f"{rel}/{name}", st):
                    continue
                dst = self.req.shared / rel / name
                try:
                    target_mtime = os.stat(dst).st_mtime_ns
                except FileNotFoundError:
                    target_mtime = -1
                if st.st_mtime_ns > target_mtime:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        self._put(src, dst)
                    except StoreError:
                        self.stats.skipped += 1  # a listing uv can fetch again: keep the shared one
                        self.stats.details.append(f"kept (locked): {rel}/{name}")

    # -- anything else uv keeps (git checkouts, ...): whole entries two levels down, if missing.

    def _merge_other(self, bucket: str) -> None:
        src_bucket = self.req.job / bucket
        for top in sorted(os.listdir(src_bucket)):
            src_top = src_bucket / top
            if fsops.is_temp_name(top) or top.endswith(".lock"):
                continue
            if not src_top.is_dir() or src_top.is_symlink():
                dst = self.req.shared / bucket / top
                if not os.path.lexists(dst):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    self._put(src_top, dst)
                continue
            for entry in sorted(os.listdir(src_top)):
                if fsops.is_temp_name(entry) or entry.endswith(".lock"):
                    continue
                self._add_whole(src_top / entry, self.req.shared / bucket / top / entry)

    def _add_whole(self, src: Path, dst: Path) -> None:
        if os.path.lexists(dst):
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not src.is_dir() or src.is_symlink():
            self._put(src, dst)
            return
        if self._stage_whole(src, dst, link=False):
            self.stats.entries += 1

    def _put(self, src: Path, dst: Path) -> None:
        """Write one file or link into the shared cache atomically (temp name beside it, then rename)."""
        tmp = fsops.temp_sibling(dst)
        try:
            if src.is_symlink():
                os.symlink(_retarget(os.readlink(src), self.req.job, self.req.shared), tmp)
            else:
                fsops.copy_file(src, tmp)
            fsops.replace(tmp, dst)
        finally:
            if os.path.lexists(tmp):
                fsops.unlink(tmp)
        self.stats.files += 1
        self.stats.bytes += os.lstat(dst).st_size


def walk_dirs(top: Path, rel_top: str) -> Iterator[tuple[Path, str, set[str]]]:
    """(folder, its path relative to the cache root, the names of the non-dir entries in it)."""
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


def group_keys(names: Iterable[str]) -> set[str]:
    keys = set()
    for name in names:
        for suffix in POINTER_SUFFIXES:
            if name.endswith(suffix):
                keys.add(name[: -len(suffix)])
    return keys


def _group_valid(folder: Path, key: str) -> bool:
    """The shared cache already has this group, and its archive is there."""
    if not any((folder / (key + s)).exists() for s in POINTER_SUFFIXES):
        return False
    link = folder / key
    if not os.path.lexists(link):
        return True  # a group without a link (a `.rev` of a local file): the pointer is enough
    archive = archive_id_of_link(str(link), is_symlink=link.is_symlink())
    cache_root = _cache_root_of(folder)
    return archive is None or cache_root is None or (cache_root / ARCHIVE_BUCKET / archive).is_dir()


def _cache_root_of(folder: Path) -> Path | None:
    for parent in (folder, *folder.parents):
        if bucket_kind(parent.name) in ("wheels", "sdists"):
            return parent.parent
    return None


def _retarget_tree_links(top: Path, old_root: Path, new_root: Path) -> None:
    for folder, _rel, names in walk_dirs(top, ""):
        for name in names:
            path = folder / name
            if path.is_symlink():
                text = os.readlink(path)
                new = _retarget(text, old_root, new_root)
                if new != text:
                    os.unlink(path)
                    os.symlink(new, path)


def interpreter_store(shared: Path) -> Path:
    """Where ci-cache keeps uv's interpreter queries: beside the shared uv cache, not in it."""
    return shared.parent / f"{shared.name}.interpreters"


def _keep_newest(folder: Path, keep: int) -> None:
    files = sorted((e.stat().st_mtime, e.path) for _rel, e in fsops.walk_files(folder))
    for _mtime, path in files[:-keep] if len(files) > keep else []:
        fsops.unlink(Path(path))
