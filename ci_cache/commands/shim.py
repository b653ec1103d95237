"""`ci-cache _shim CMD -- ARGS` (hidden): what a shared-mode shim runs (`shims.run_tool`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ci_cache import shims
from ci_cache.commands import options

name = shims.SHIM_SUBCOMMAND
brief: str | None = None  # kept out of `ci-cache --help`: only the shims call it
description = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool_command")
    parser.add_argument("argv", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    cfg = options.load_config(args, env).config
    return shims.run_tool([args.tool_command, *argv], config=cfg, root=options.resolve_root(cfg, env), env=env)
