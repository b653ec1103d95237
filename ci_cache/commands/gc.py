"""`ci-cache gc`: reclaim the dirs of crashed jobs and the temp dirs nobody can be writing."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from ci_cache import gc, log, rootlayout
from ci_cache.commands import options
from ci_cache.store import Store

name = "gc"
brief: str | None = "reclaim the dirs of crashed jobs and leftover temp dirs"
description = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_store_options(parser)
    options.add_config_flags(parser, [("gc", "grace")])


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    cfg = options.load_config(args, env).config
    store = Store(options.resolve_root(cfg, env))
    with rootlayout.holding(store, timeout=cfg.lock_timeout):
        report = gc.collect(store, grace=cfg.gc.grace, pool_max_age=cfg.pool.max_age)
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        log.info(f"gc: reclaimed {len(report.reclaimed_jobs)} dead job(s) ({report.bytes_freed / 2**20:.1f} MiB), "
                 f"{len(report.reclaimed_temp)} temp dir(s), {len(report.reclaimed_pool)} old pool cache(s); "
                 f"{len(report.live_jobs)} live job(s) left alone")
    return 0
