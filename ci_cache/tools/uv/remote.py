"""uv's side of the fleet tier: which remote entries a job needs, and the codec the pull and push use.

A pull looks only for what the cache lacks: a pinned package whose sha256 some local pointer already
carries is never looked up, nor a named package the cache has any group of, so a warm agent makes
no request at all. Pinned files are found by their sha256 in a LIST of the package's prefix; a name
alone takes the newest version there and follows its Requires-Dist, round by round. Wheels and
builds for another OS or CPU are not pulled (uv.lock pins every platform's wheels).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from ci_cache.keyfiles import requirement_name
from ci_cache.remote.layout import Entry
from ci_cache.tools.base import PRESENT, EntryId, ExportPlan, ImportStats, Pulled, Wanted
from ci_cache.tools.uv import buckets as uv_buckets
from ci_cache.tools.uv import remote_export
from ci_cache.tools.uv import remote_names as names
from ci_cache.tools.uv.buckets import Buckets
from ci_cache.tools.uv.layout import hold_root_lock
from ci_cache.tools.uv.pointers import PointerError, requires_dist, revision_pointer, wheel_pointer
from ci_cache.tools.uv.remote_export import Exporter
from ci_cache.tools.uv.remote_import import (
    EntryProblem,
    Installer,
    Unpacked,
    check_build,
    check_listing,
    check_wheel,
    present_build,
    present_listing,
    present_wheel,
    unpack_beside,
)

_WHEEL_KINDS = frozenset({"wheel", "any"})
_SDIST_KINDS = frozenset({"sdist", "any"})


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def name_folders(cache: Path, bucket: str, name: str) -> list[Path]:
    """Where uv keeps a package's entries in a bucket: `pypi/<name>`, `index/<hash>/<name>`, `url/<hash>/<name>`."""
    base = cache / bucket
    found = [base / "pypi" / name] + [base / src / h / name for src in ("index", "url") for h in _listdir(base / src)]
    return [f for f in found if f.is_dir()]


class LocalView:
    """What a uv cache already holds of a package, read from its pointers (nothing else is opened)."""

    def __init__(self, cache: Path, buckets: Buckets) -> None:
        self.cache = cache
        self.buckets = buckets

    def hashes(self, name: str) -> set[str]:
        """The sha256 of every wheel and sdist of `name` the cache has a pointer for."""
        found: set[str] = set()
        for folder in name_folders(self.cache, self.buckets.wheels, name):
            for file in _listdir(folder):
                if file.endswith(".http"):
                    try:
                        wheel = wheel_pointer(file, (folder / file).read_bytes())
                    except (OSError, PointerError):
                        continue
                    # A pointer whose archive is gone (a dangling one) is a miss: the remote may mend it.
                    if wheel.sha256 and (self.cache / self.buckets.archive / wheel.archive).is_dir():
                        found.add(wheel.sha256)
        for folder in name_folders(self.cache, self.buckets.sdists, name):
            for version in _listdir(folder):
                pointer = folder / version / "revision.http"
                try:
                    sha = revision_pointer(pointer.name, pointer.read_bytes()).sha256
                except (OSError, PointerError):
                    continue
                if sha:
                    found.add(sha)
        return found

    def has_any(self, name: str) -> bool:
        """Any wheel group or sdist version of `name`."""
        for folder in name_folders(self.cache, self.buckets.wheels, name):
            if any(f.endswith((".http", ".rev")) for f in _listdir(folder)):
                return True
        return any(_listdir(folder) for folder in name_folders(self.cache, self.buckets.sdists, name))

    def has_listing(self, name: str) -> bool:
        base = self.cache / self.buckets.simple
        candidates = [base / "pypi" / f"{name}.rkyv"] + [base / "index" / h / f"{name}.rkyv"
                                                          for h in _listdir(base / "index")]
        return any(c.exists() for c in candidates)


class UvPullSession:
    """One pull into one uv cache (see the module's docstring)."""

    def __init__(self, cache: Path, wanted: Wanted, buckets: Buckets | None, *, machine: str | None = None) -> None:
        self.cache = cache
        self.buckets = buckets
        self.machine = machine or names.this_platform()
        self.pins: dict[str, dict[str, str]] = defaultdict(dict)
        for pin in wanted.pins:
            kinds = self.pins[pin.name]
            kinds[pin.sha256] = "any" if kinds.get(pin.sha256, pin.kind) != pin.kind else pin.kind
        self.unpinned = set(wanted.unpinned) - set(self.pins)
        self.asked = set(self.pins) | self.unpinned  # what the job named (not the dependencies found on the way)
        self.resolved = set(wanted.resolved)
        self.by_name: set[str] = set()  # names looked up by name, their dependencies included
        self.looked_up: set[str] = set()
        self.satisfied: set[str] = set()
        self.prepared: dict[Path, Unpacked | None] = {}  # blob -> its archive, unpacked while others download
        self._notes: list[str] = []
        if buckets is None:
            self._notes.append("uv was not found on PATH (or did not say which cache buckets it uses): "
                               "nothing is pulled for uv")
        if buckets is not None:
            self.local = LocalView(cache, buckets)
            self.wheels = names.wheels_root(buckets.wheels, buckets.archive)
            self.builds = names.builds_root(buckets.sdists, buckets.archive)
            self.listings = names.listings_root(buckets.simple)

    # -- what to list

    def lookups(self) -> list[str]:
        if self.buckets is None:
            return []
        out: set[str] = set()
        for name, shas in sorted(self.pins.items()):
            if not names.segment_ok(name):
                continue
            self.looked_up.add(name)
            if self.local.hashes(name) & set(shas):
                self.satisfied.add(name)
                continue
            kinds = set(shas.values())
            if kinds & _WHEEL_KINDS:
                out.add(f"{self.wheels}/{name}")
            if kinds & _SDIST_KINDS:
                out.add(f"{self.builds}/{name}")
        out |= self._by_name(self.unpinned)
        out |= self._listings(self.resolved)
        return sorted(out)

    def _by_name(self, wanted: set[str]) -> set[str]:
        out: set[str] = set()
        for name in sorted(wanted - self.looked_up):
            if not names.segment_ok(name):
                continue
            self.looked_up.add(name)
            if self.local.has_any(name):
                self.satisfied.add(name)
                continue
            self.by_name.add(name)
            out |= {f"{self.wheels}/{name}", f"{self.builds}/{name}"}
        return out

    def _listings(self, wanted: set[str]) -> set[str]:
        return {f"{self.listings}/{name}" for name in wanted
                if names.segment_ok(name) and not self.local.has_listing(name)}

    # -- what to read

    def choose(self, found: Sequence[EntryId]) -> list[EntryId]:
        chosen: list[EntryId] = []
        candidates: dict[str, list[tuple[str, EntryId]]] = defaultdict(list)  # by-name: name -> (version, id)
        latest: dict[tuple[str, str], tuple[str, EntryId]] = {}  # listings: (name, token) -> (day, id)
        for namespace, key in found:
            parts = namespace.split("/")
            if len(parts) < 2:
                continue
            root, name = parts[0], parts[1]
            if root in (self.wheels, self.builds) and len(parts) == 3:
                sha = names.key_sha256(key)
                kinds = _WHEEL_KINDS if root == self.wheels else _SDIST_KINDS
                if name in self.pins:
                    if sha is not None and self.pins[name].get(sha) in kinds:
                        chosen.append((namespace, key))
                elif name in self.by_name:
                    candidates[name].append((parts[2], (namespace, key)))
            elif root == self.listings and len(parts) == 2:
                token, day = names.listing_parts(key)
                if day > latest.get((name, token), ("", ("", "")))[0]:
                    latest[(name, token)] = (day, (namespace, key))
        for entries in candidates.values():
            newest = max((v for v, _ in entries), key=names.version_key)
            chosen.extend(entry_id for v, entry_id in entries if v == newest)
        chosen.extend(entry_id for _day, entry_id in latest.values())
        return sorted(chosen)

    # -- what to install

    def accept(self, entry: Entry) -> str | None:
        assert self.buckets is not None
        meta = entry.meta
        kind = meta.get("kind")
        try:
            if kind == "wheel":
                check_wheel(meta, entry.files, self.buckets)
            elif kind == "build":
                check_build(meta, entry.files, self.buckets)
            elif kind == "listing":
                check_listing(meta, self.buckets)
                return PRESENT if present_listing(self.cache, meta) else None
            else:
                raise EntryProblem(f"unknown kind {kind!r}")
        except EntryProblem as exc:
            return f"unusable entry: {exc}"
        wheel = names.parse_wheel(str(meta.get("filename")))
        if wheel is None or names.key_sha256(entry.key) != meta.get("sha256") \
                or entry.namespace.split("/")[1:] != [wheel.name, wheel.version] or "archive" not in entry.blobs:
            return "unusable entry: its name, key and content disagree"
        if not names.platform_fits(wheel.platform, self.machine):
            return f"for another platform ({wheel.platform})"
        present = present_wheel if kind == "wheel" else present_build
        return PRESENT if present(self.cache, meta) else None

    def prepare(self, blob: Path, role: str) -> None:
        if role == "archive":
            self.prepared[blob] = unpack_beside(blob)

    def install(self, pulled: Sequence[Pulled]) -> ImportStats:
        assert self.buckets is not None
        stats = Installer(self.cache, self.buckets, prepared=self.prepared).run(pulled)
        ids = set(stats.installed)
        for item in pulled:
            if (item.entry.namespace, item.entry.key) in ids:
                self.satisfied.add(item.entry.namespace.split("/")[1])
        return stats

    def present(self, entry: Entry) -> None:
        """Record that the cache already had this entry: its package is satisfied."""
        self.satisfied.add(entry.namespace.split("/")[1])

    def next_round(self, installed: Sequence[Entry]) -> list[str]:
        if self.buckets is None:
            return []
        wanted: set[str] = set()
        for entry in installed:
            if entry.namespace.split("/")[1] in self.by_name:
                wanted |= _dependencies(entry)
        wanted = {w for w in wanted if names.segment_ok(w)}
        fresh = wanted - self.looked_up
        # The job's files are resolved on install (requirements, pyproject): so are the dependencies.
        listings = self._listings(fresh) if self.resolved else set()
        return sorted(self._by_name(fresh) | listings)

    def unmet(self) -> list[str]:
        # Dependencies found on the way may be for another platform or Python (markers): not reported.
        wanted = self.asked & self.looked_up
        return sorted(f"{name}: no entry on the remote" for name in wanted - self.satisfied)

    def notes(self) -> list[str]:
        return list(self._notes)


def _dependencies(entry: Entry) -> set[str]:
    """The names an installed wheel requires, from uv's metadata in the entry; requirements of extras
    are left out (a name alone does not say which extras a job wants)."""
    data = entry.files.get("msgpack", entry.files.get("metadata"))
    if data is None:
        return set()
    try:
        requires = requires_dist(data)
    except PointerError:
        return set()
    out = set()
    for text in requires:
        _spec, _, marker = text.partition(";")
        name = requirement_name(text)
        if name and "extra" not in marker:
            out.add(name)
    return out


class UvRemote:
    """The codec of uv's cache; the bucket versions come from the uv on `env`'s PATH."""

    def __init__(self, env: Mapping[str, str], *, machine: str | None = None, buckets: Buckets | None = None) -> None:
        self.env = env
        self.machine = machine
        self.buckets = buckets  # None: ask the uv on PATH

    def pull_session(self, cache: Path, wanted: Wanted) -> UvPullSession:
        known = self.buckets or uv_buckets.current(cache, self.env)
        return UvPullSession(cache, wanted, known, machine=self.machine)

    def exports(self, cache: Path, groups: Sequence[str] | None) -> ExportPlan:
        return Exporter(cache).run(groups)

    def groups(self, cache: Path) -> list[str]:
        return remote_export.groups(cache)

    def hold(self, cache: Path, *, timeout: float) -> AbstractContextManager[object]:
        return hold_root_lock(cache, timeout=timeout)
