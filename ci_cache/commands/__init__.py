"""The commands of `ci-cache`, one module each, found through one registry.

A command module is a `Command`: its name, its line in `ci-cache --help` (None keeps it out: the hidden
`_shim`), its description, the arguments it adds to its parser, and what it runs with them. The registry
imports a command's module only when that command is looked up: a job's `run` or `setup` loads its own
module and what it needs, not every command's.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator, Mapping
from typing import Protocol, cast


class Command(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def brief(self) -> str | None: ...

    @property
    def description(self) -> str | None: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, env: Mapping[str, str]) -> int: ...


class _Registry(Mapping[str, Command]):
    """Command name -> its module `ci_cache.commands.<name without a leading _>`, imported on first lookup."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._loaded: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._loaded:
            module = cast(Command, importlib.import_module(f"{__name__}.{name.lstrip('_')}"))
            if module.name != name:
                raise ImportError(f"{__name__}.{name.lstrip('_')} registers itself as {module.name!r}, not {name!r}")
            self._loaded[name] = module
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


# In the order `ci-cache --help` lists them.
COMMANDS: Mapping[str, Command] = _Registry(
    ("run", "setup", "finish", "status", "gc", "verify", "prune", "doctor", "remote", "config", "demo", "_shim"))
