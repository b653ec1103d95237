"""The package names a job needs, read from its lock and requirements files (`key_files`)."""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_TOML_NAME = re.compile(r'^\s*name\s*=\s*"([^"]+)"\s*$')
_PYPROJECT_DEP = re.compile(r'^\s*"([A-Za-z0-9][A-Za-z0-9._-]*)')


def normalize(name: str) -> str:
    """PEP 503 normalisation, as uv names its cache folders."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class KeyFiles:
    files: tuple[Path, ...]
    packages: frozenset[str] | None  # None when a file could not be read for names


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
    files = find(patterns, base)
    names: set[str] = set()
    for path in files:
        parsed = names_in(path)
        if parsed is None:
            return KeyFiles(tuple(files), None)
        names |= parsed
    return KeyFiles(tuple(files), frozenset(names) if files else None)


def names_in(path: Path, _seen: set[Path] | None = None) -> set[str] | None:
    """The package names in one file, or None when its format is unknown."""
    name = path.name.lower()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if name == "uv.lock":
        return _toml_array_names(text.splitlines(), "[[package]]")
    if name.startswith("pylock") and name.endswith(".toml"):
        return _toml_array_names(text.splitlines(), "[[packages]]")
    if name == "pyproject.toml":
        return _pyproject_names(text.splitlines())
    if name.endswith((".txt", ".in")):
        return _requirements_names(path, text.splitlines(), _seen or set())
    return None


def _toml_array_names(lines: Iterable[str], header: str) -> set[str]:
    names: set[str] = set()
    in_entry = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            in_entry = stripped == header
            continue
        if in_entry:
            match = _TOML_NAME.match(line)
            if match:
                names.add(normalize(match.group(1)))
                in_entry = False
    return names


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


def _requirements_names(path: Path, lines: Iterable[str], seen: set[Path]) -> set[str]:
    seen.add(path.resolve())
    names: set[str] = set()
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = re.match(r"^(-r|-c|--requirement|--constraint)(?:\s+|=)(.+)$", line)
        if option:
            nested = path.parent / option.group(2).strip()
            if nested.resolve() not in seen and nested.is_file():
                names |= _requirements_names(nested, nested.read_text(errors="replace").splitlines(), seen)
            continue
        if line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.add(normalize(match.group(1)))
    return names
