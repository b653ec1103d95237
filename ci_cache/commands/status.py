"""`ci-cache status`: the shared caches, and the live and stale jobs under the root."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from ci_cache import status
from ci_cache.commands import options
from ci_cache.store import Store

name = "status"
brief: str | None = "shared caches, live and stale jobs"
description = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_store_options(parser)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    cfg = options.load_config(args, env).config
    data = status.collect(Store(options.resolve_root(cfg, env)))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(status.render(data))
    return 0
