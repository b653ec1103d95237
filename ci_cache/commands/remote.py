"""`ci-cache remote status|verify|gc|push`: operate the fleet tier's object storage as a whole."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict
from datetime import timedelta
from functools import partial
from typing import Any

from ci_cache import log
from ci_cache.commands import options
from ci_cache.config import Config
from ci_cache.errors import UsageError, VerifyFailed

name = "remote"
brief: str | None = "the fleet tier's object storage: status, verify, gc, push"
description = ("Operate the remote cache that every agent shares (`remote.url`): what it holds, whether every "
               "entry's blob is there and matches, deleting what nobody used lately, and filling it from this "
               "agent's shared cache. Reports go to stdout (`--json`: one JSON object). Credentials come from "
               "the cloud's env vars: gc and `verify --fix` need the one that may delete (docs/remote.md).")
# Seconds one request may take (retries included); operations have no budget of their own.
REQUEST_TIMEOUT = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="remote_command", metavar="SUBCOMMAND", required=True)
    status = sub.add_parser("status", help="objects, bytes, entries by uv version",
                            description="What the remote holds: objects, bytes, blobs, entries by tool and cache "
                            "version, used marks.")
    verify = sub.add_parser("verify", help="every entry's blob exists and matches; exit 5 on a problem",
                            description="Read every entry, check that each blob it names exists with its size, and "
                            "re-hash the blobs (all, or --sample of them). Exit 5 when something is broken.")
    verify.add_argument("--sample", type=int, metavar="N", help="re-hash only N blobs chosen at random")
    verify.add_argument("--fix", action="store_true",
                        help="delete broken entries and corrupt blobs, so the next push publishes them again")
    gc = sub.add_parser("gc", help="delete entries unused for N days, then blobs no entry names",
                        description="Delete entries neither used nor created within --keep-days, then the blobs no "
                        "entry names once older than remote.gc_grace (an upload in flight is never deleted), then "
                        "old used marks. Run it as a scheduled job with the gc credential.")
    gc.add_argument("--keep-days", type=int, metavar="N", help="default: remote.keep_days")
    gc.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    push = sub.add_parser("push", help="publish this agent's shared caches (what the remote lacks)",
                          description="Publish every entry of this agent's shared caches that the remote lacks, "
                          "e.g. to fill a new remote from a warm agent. Create-if-absent: nothing is overwritten.")
    for each in (status, verify, gc, push):
        options.add_global_options(each, top=False)
        options.add_store_options(each)
        options.add_config_flags(each, options.REMOTE_KEYS)


def _settings(cfg: Config) -> Any:
    if cfg.remote.url is None:
        raise UsageError("no remote is configured", hint="set remote.url in ci-cache.yml or CI_CACHE_REMOTE_URL, "
                         "e.g. s3://BUCKET/PREFIX (docs/remote.md)")
    return cfg.remote


def _print(data: Any, text: str, as_json: bool) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text, file=sys.stdout, flush=True)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache.remote import ops, render
    from ci_cache.remote.budget import run as run_async
    from ci_cache.remote.cas import Cas
    from ci_cache.remote.obstore_store import open_store

    cfg = options.load_config(args, env).config
    settings = _settings(cfg)
    store = open_store(settings, env, request_timeout=REQUEST_TIMEOUT)
    cas = Cas(store, max_blob_size=settings.max_blob_size)
    command = args.remote_command
    if command == "status":
        result = run_async(lambda: ops.status(cas))
        _print(asdict(result), render.status(result), args.json)
    elif command == "verify":
        report = run_async(lambda: ops.verify(cas, sample=args.sample, concurrency=settings.concurrency))
        if args.fix and report.problems:
            report = run_async(lambda: ops.fix(cas, report, concurrency=settings.concurrency))
        _print({**asdict(report), "ok": report.ok}, render.verify(report), args.json)
        if not report.ok and not report.fixed:
            raise VerifyFailed(f"{store.where}: {len(report.problems)} problem(s)",
                               hint="run `ci-cache remote verify --fix` with the gc credential")
    elif command == "gc":
        keep = args.keep_days if args.keep_days is not None else settings.keep_days
        if keep < 1:
            raise UsageError(f"--keep-days {keep}: keep at least 1 day")
        result_gc = run_async(lambda: ops.gc(cas, keep_days=keep, grace=timedelta(seconds=settings.gc_grace),
                                             dry_run=args.dry_run, concurrency=settings.concurrency))
        _print(asdict(result_gc), render.gc(result_gc), args.json)
    else:
        _push_all(cfg, env, store, args.json)
    return 0


def _push_all(cfg: Config, env: Mapping[str, str], store: Any, as_json: bool) -> None:
    from ci_cache.remote import progress, render, sync
    from ci_cache.remote.budget import Budget
    from ci_cache.remote.budget import run as run_async
    from ci_cache.store import Store
    from ci_cache.tools import from_config

    root = Store(options.resolve_root(cfg, env))
    out: dict[str, Any] = {}
    texts = []
    for tool in from_config(cfg):
        codec = tool.remote(env) if tool.has_shared_cache else None
        cache = root.shared_cache(tool.name)
        if codec is None or not cache.is_dir():
            continue
        report = run_async(partial(
            sync.push, store, codec, cache, None, Budget(None, what="remote push"), concurrency=cfg.remote.concurrency,
            max_blob_size=cfg.remote.max_blob_size, progress=progress.on(sys.stderr, quiet=log.quiet()),
            strict=True))
        out[tool.name] = report.as_dict()
        texts.append(render.push(tool.name, report))
    _print(out, "\n".join(texts) or f"no shared cache under {root.root} travels through the remote", as_json)
