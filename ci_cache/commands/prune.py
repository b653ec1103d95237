"""`ci-cache prune`: bound every shared cache by size and age, each by its tool's own rules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from ci_cache import prune, rootlayout
from ci_cache.commands import options
from ci_cache.store import Store
from ci_cache.tools import from_config

name = "prune"
brief: str | None = "bound the shared caches by size and age"
description = ("Run `uv cache prune`, then evict least recently used whole entries until each shared cache is "
               "under --max-size and nothing is older than --max-age.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_store_options(parser)
    options.add_config_flags(parser, [("prune", "max_size"), ("prune", "max_age"), ("prune", "uv_ci")])


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    cfg = options.load_config(args, env).config
    bounds = cfg.prune
    store = Store(options.resolve_root(cfg, env))
    with rootlayout.holding(store, timeout=cfg.lock_timeout):
        reports = prune.prune_store(store, from_config(cfg), max_size=bounds.max_size, max_age=bounds.max_age,
                                    ci=bounds.uv_ci, env=env, lock_timeout=cfg.lock_timeout)
    if args.json:
        print(json.dumps([r.__dict__ for r in reports], indent=2))
    for report in reports:
        prune.log_report(report)
    return 0
