"""The error hierarchy: each exit code has one meaning, and docs/cli.md lists exactly the codes there are."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import ci_cache
from ci_cache.errors import AllocationMissing, CiCacheError, ConfigError, NothingAllocated, UsageError

REPO = Path(__file__).resolve().parents[2]

# The only subclasses that share their parent's code, on purpose:
SHARED_ON_PURPOSE: dict[type[CiCacheError], type[CiCacheError]] = {
    # A bad ci-cache.yml or CI_CACHE_* value is a usage error like a bad flag: exit 2.
    ConfigError: UsageError,
    # finish carrying CI_CACHE_TOKEN=none is a finish with no allocation of its own (it exits 0 even when
    # strict, but where it is raised it means what 7 means).
    NothingAllocated: AllocationMissing,
}


def every_error() -> list[type[CiCacheError]]:
    """CiCacheError and every subclass of it anywhere in the package."""
    for module in pkgutil.walk_packages(ci_cache.__path__, "ci_cache."):
        if module.name != "ci_cache.__main__":
            importlib.import_module(module.name)
    found: list[type[CiCacheError]] = []
    todo: list[type[CiCacheError]] = [CiCacheError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_no_two_errors_share_an_exit_code_unless_one_is_meant_to() -> None:
    errors = every_error()
    assert len(errors) >= 10
    for error in errors:
        for other in errors:
            if error is other or error.exit_code != other.exit_code:
                continue
            meant = SHARED_ON_PURPOSE.get(error) is other or SHARED_ON_PURPOSE.get(other) is error
            assert meant, f"{error.__name__} and {other.__name__} share exit code {error.exit_code}"
    for child, parent in SHARED_ON_PURPOSE.items():
        assert issubclass(child, parent) and child.exit_code == parent.exit_code


def test_the_base_class_is_never_raised_so_exit_1_stays_an_internal_error() -> None:
    for path in (REPO / "ci_cache").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                assert not (isinstance(func, ast.Name) and func.id == "CiCacheError"), f"{path}:{node.lineno}"


def documented_codes() -> dict[int, str]:
    text = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    table = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_docs_list_exactly_the_exit_codes_there_are() -> None:
    codes = documented_codes()
    assert set(codes) == {0} | {error.exit_code for error in every_error()}
    assert codes[1] == "unexpected internal error"
    assert "busy" in codes[6] and "--strict" in codes[7] and "remote" in codes[8]
    assert len(set(codes.values())) == len(codes)
