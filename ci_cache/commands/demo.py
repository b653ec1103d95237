"""`ci-cache demo`: concurrent isolated uv jobs against a local package index, to watch ci-cache work."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

name = "demo"
brief: str | None = "concurrent jobs against a local index: see it work"
description = ("Build a small package index, serve it on 127.0.0.1, and run concurrent isolated uv jobs through "
               "ci-cache: two waves, the second one warm.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=4, help="concurrent jobs per wave (default 4)")
    parser.add_argument("--root", metavar="DIR", help="ci-cache root to use (default: a temp dir)")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import demo  # the index builder and server: only the demo needs them

    return demo.main(jobs=args.jobs, root=Path(args.root) if args.root else None, env=env)
