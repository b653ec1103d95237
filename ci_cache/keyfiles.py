"""What a job needs, read from its lock and requirements files (`key_files`): package names, and the
sha256 of each wheel or sdist the files pin."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_TOML_NAME = re.compile(r'^\s*name\s*=\s*"([^"]+)"\s*$')
_PYPROJECT_DEP = re.compile(r'^\s*"([A-Za-z0-9][A-Za-z0-9._-]*)')
# uv.lock: `hash = "sha256:<hex>"`; pylock.toml: `hashes = { sha256 = "<hex>" }` or a `sha256 = "<hex>"` line.
_LOCK_HASH = re.compile(r'(?:\bhash\s*=\s*"sha256:|\bsha256\s*=\s*")([0-9a-fA-F]{64})"')
# requirements: `--hash=sha256:<hex>` (or `--hash sha256:<hex>`), and a URL's `#sha256=<hex>` fragment.
_REQ_HASH = re.compile(r"(?:--hash[=\s]+sha256:|#sha256=)([0-9a-fA-F]{64})\b")

PinKind = Literal["wheel", "sdist", "any"]


def normalize(name: str) -> str:
    """PEP 503 normalisation, as uv names its cache folders."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(text: str) -> str | None:
    """The normalised name a PEP 508 requirement starts with (`Foo_Bar[x]>=1 ; ...` -> `foo-bar`)."""
    match = _NAME.match(text)
    return normalize(match.group(1)) if match else None


class Pin(NamedTuple):
    """A distribution file a job's files name by hash: a wheel, an sdist, or either (requirements files)."""

    name: str
    sha256: str
    kind: PinKind


class Needs:
    """What one file (with the files it includes) names.

    `unpinned`: names given without any hash (pyproject, plain requirements), so only a name can find
    them. `resolved`: names that a resolver looks up in the package index (requirements and pyproject
    are resolved on install; lock files are not), so their index listing matters offline.
    """

    def __init__(self, names: set[str] | None = None, pins: set[Pin] | None = None,
                 unpinned: set[str] | None = None, resolved: set[str] | None = None) -> None:
        self.names: set[str] = set() if names is None else names
        self.pins: set[Pin] = set() if pins is None else pins
        self.unpinned: set[str] = set() if unpinned is None else unpinned
        self.resolved: set[str] = set() if resolved is None else resolved

    def add(self, other: Needs) -> None:
        self.names |= other.names
        self.pins |= other.pins
        self.unpinned |= other.unpinned
        self.resolved |= other.resolved


class KeyFiles(NamedTuple):
    files: tuple[Path, ...]
    packages: frozenset[str] | None  # None when a file could not be read for names
    pins: frozenset[Pin] = frozenset()
    unpinned: frozenset[str] = frozenset()
    resolved: frozenset[str] = frozenset()


# What a job's workspace is searched for when `key_files` is not configured: the files that say what a
# Python job installs. A lock file names exact files (and its pyproject's dependencies with them), so
# pyproject.toml counts only where no lock file is: its bare names would add by-name lookups and index
# listings that the lock makes useless.
LOCK_PATTERNS = ("uv.lock", "pylock.toml", "pylock.*.toml")
AUTO_PATTERNS = (*LOCK_PATTERNS, "requirements*.txt")
AUTO_FALLBACK = "pyproject.toml"


def detected(base: Path) -> tuple[str, ...]:
    """The key-file patterns that automatic detection uses in the workspace `base` (top level only)."""
    if any(find([pattern], base) for pattern in LOCK_PATTERNS):
        return AUTO_PATTERNS
    return (*AUTO_PATTERNS, AUTO_FALLBACK)


def for_job(configured: Sequence[str], workspace: Path) -> KeyFiles:
    """What a job's files name: the configured `key_files` globs, else the files detected in its workspace.

    The one home of that rule: what a job pulls from the remote, and what it seeds, both come from here.
    """
    return read(configured or detected(workspace), workspace)


def find(patterns: Sequence[str], base: Path) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        for match in sorted(glob.glob(full, recursive=True)):
            path = Path(match)
            if path.is_file():
                found[path] = None
    return list(found)


def read(patterns: Sequence[str], base: Path) -> KeyFiles:
    """Everything the files matching `patterns` name. One file of an unknown format makes `packages`
    None (seed everything) but keeps what the other files pin."""
    files = find(patterns, base)
    total = Needs()
    known = True
    for path in files:
        parsed = needs_in(path)
        if parsed is None:
            known = False
            continue
        total.add(parsed)
    packages = frozenset(total.names) if files and known else None
    return KeyFiles(tuple(files), packages, frozenset(total.pins), frozenset(total.unpinned),
                    frozenset(total.resolved))


def names_in(path: Path) -> set[str] | None:
    """The package names in one file, or None when its format is unknown."""
    needs = needs_in(path)
    return None if needs is None else needs.names


def needs_in(path: Path, _seen: set[Path] | None = None) -> Needs | None:
    """What one file names, or None when its format is unknown or it cannot be read."""
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if name == "uv.lock":
        return _lock_needs(text.splitlines(), "[[package]]")
    if name.startswith("pylock") and name.endswith(".toml"):
        return _lock_needs(text.splitlines(), "[[packages]]")
    if name == "pyproject.toml":
        names = _pyproject_names(text.splitlines())
        return Needs(names=names, unpinned=set(names), resolved=set(names))
    if name.endswith((".txt", ".in")):
        return _requirements_needs(path, text.splitlines(), _seen or set())
    return None


def _sdist_or_wheel(line: str, table: str) -> PinKind:
    """Which file a hash in a lock file belongs to, from the key or table it sits in."""
    key = line.split("=", 1)[0].strip()
    if key == "sdist" or table.endswith(".sdist"):
        return "sdist"
    if key == "wheels" or table.endswith(".wheels") or line.lstrip().startswith("{"):
        return "wheel"
    return "any"


def _lock_needs(lines: Iterable[str], header: str) -> Needs:
    """uv.lock and pylock.toml: every package's name, and the hashes of its sdist and wheels.

    uv writes one wheel per line inside `wheels = [...]`; pylock writers use inline arrays or
    `[[packages.wheels]]` tables. A hash that belongs to neither (an archive URL) pins either kind.
    """
    needs = Needs()
    name: str | None = None
    table = ""
    in_wheels = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[]").strip()
            if stripped == header:
                name = None
            elif not table.startswith(header.strip("[]") + "."):
                name = None if table != header.strip("[]") else name
            in_wheels = False
            continue
        if name is None and table == header.strip("[]"):
            match = _TOML_NAME.match(line)
            if match:
                name = normalize(match.group(1))
                needs.names.add(name)
            continue
        if name is None:
            continue
        if stripped.startswith("wheels") and "[" in stripped and not stripped.endswith("]"):
            in_wheels = True
        for digest in _LOCK_HASH.findall(line):
            kind: PinKind = "wheel" if in_wheels else _sdist_or_wheel(line, table)
            needs.pins.add(Pin(name, digest.lower(), kind))
        if in_wheels and stripped.endswith("]"):
            in_wheels = False
    return needs


_DEP_KEYS = frozenset({"dependencies", "requires"})
_DEP_TABLES = frozenset({"project.optional-dependencies", "dependency-groups", "tool.uv"})


def _pyproject_names(lines: Iterable[str]) -> set[str]:
    names: set[str] = set()
    in_deps = False
    in_dep_table = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            # Tables whose arrays hold requirements: [project], [project.optional-dependencies], ...
            table = stripped.strip("[]").strip()
            in_dep_table = table in _DEP_TABLES
            in_deps = False
            continue
        key = re.match(r"^([A-Za-z0-9_.-]+)\s*=\s*\[", stripped)
        if key and (key.group(1) in _DEP_KEYS or in_dep_table):
            in_deps = True
        elif key:
            in_deps = False
        if in_deps:
            for dep in re.findall(r'"([A-Za-z0-9][A-Za-z0-9._-]*)', stripped):
                names.add(normalize(dep))
            if stripped.endswith("]"):
                in_deps = False
    return names


def _logical_lines(lines: Iterable[str]) -> Iterable[str]:
    """Requirement lines with their `\\` continuations joined, as pip reads them."""
    pending = ""
    for raw in lines:
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        yield pending + raw
        pending = ""
    if pending:
        yield pending


def _requirements_needs(path: Path, lines: Iterable[str], seen: set[Path]) -> Needs:
    seen.add(path.resolve())
    needs = Needs()
    for logical in _logical_lines(lines):
        line = logical.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = re.match(r"^(-r|-c|--requirement|--constraint)(?:\s+|=)(.+)$", line)
        if option:
            nested = path.parent / option.group(2).strip()
            if nested.resolve() not in seen and nested.is_file():
                needs.add(_requirements_needs(nested, nested.read_text(errors="replace").splitlines(), seen))
            continue
        if line.startswith("-"):
            continue
        name = requirement_name(line)
        if name:
            needs.names.add(name)
            needs.resolved.add(name)
            digests = {d.lower() for d in _REQ_HASH.findall(line)}
            if digests:
                needs.pins.update(Pin(name, d, "any") for d in digests)
            else:
                needs.unpinned.add(name)
    return needs
