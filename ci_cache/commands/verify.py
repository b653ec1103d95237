"""`ci-cache verify`: check a shared cache's invariants; `--fix` removes what is provably broken."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

from ci_cache import log, rootlayout, verify
from ci_cache.commands import options
from ci_cache.errors import VerifyFailed
from ci_cache.store import Store
from ci_cache.tools import BUILTINS

name = "verify"
brief: str | None = "check the shared caches' invariants; --fix repairs"
description = ("Check the shared uv cache (or the uv cache at PATH): every pointer names an existing archive, no "
               "dangling links, no leftover temp dirs. Exit 5 on an error.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_store_options(parser)
    parser.add_argument("path", nargs="?", help="a uv cache dir (default: the shared uv cache under the root)")
    parser.add_argument("--fix", action="store_true", help="remove what is provably broken, never a valid entry")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    cfg = options.load_config(args, env).config
    store = Store(options.resolve_root(cfg, env))
    cache = Path(args.path) if args.path else store.shared_cache("uv")
    if not args.path and not cache.is_dir():
        # A new root, or one no job has merged into yet: nothing can be broken in it.
        if args.json:
            print(json.dumps({"cache": str(cache), "ok": True, "findings": []}, indent=2))
        else:
            print(f"{cache}: no shared uv cache yet, nothing to check\n  OK")
        return 0
    uv = BUILTINS["uv"]()
    report = verify.check(uv, cache, grace=cfg.gc.grace)
    if args.fix:
        # Repairing the root's own cache writes to the root: only at a layout this ci-cache knows.
        with rootlayout.holding(store, timeout=cfg.lock_timeout) if not args.path else contextlib.nullcontext():
            removed = verify.fix(report)
        log.info(f"verify --fix: removed {removed} broken or leftover item(s)")
        report = verify.check(uv, cache, grace=cfg.gc.grace)
    if args.json:
        print(json.dumps({"cache": str(cache), "ok": report.ok, "findings": [
            {"kind": f.kind, "path": f.path, "problem": f.problem} for f in report.findings]}, indent=2))
    else:
        print(verify.render(report))
    if not report.ok:
        errors = len(report.errors)
        raise VerifyFailed(f"{cache}: {errors} broken entr{'y' if errors == 1 else 'ies'}", hint=verify.advice(report))
    return 0
