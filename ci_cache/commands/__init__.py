"""The commands of `ci-cache`, one module each, found through one registry.

A command module is a `Command`: its name, its line in `ci-cache --help` (None keeps it out: the hidden
`_shim`), its description, the arguments it adds to its parser, and what it runs with them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Protocol

from ci_cache.commands import config, demo, doctor, finish, gc, prune, remote, run, setup, shim, status, verify


class Command(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def brief(self) -> str | None: ...

    @property
    def description(self) -> str | None: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, env: Mapping[str, str]) -> int: ...


_ALL: tuple[Command, ...] = (run, setup, finish, status, gc, verify, prune, doctor, remote, config, demo, shim)
# In the order `ci-cache --help` lists them.
COMMANDS: dict[str, Command] = {command.name: command for command in _ALL}
