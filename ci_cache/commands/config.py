"""`ci-cache config`: the effective config, each value with where it came from; or the file's schema."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ci_cache import config, osapi
from ci_cache.commands import options

name = "config"
brief: str | None = "show the effective config and where each value came from"
description = ("Print the effective config, each value with its source: default, the file and line, a CI_CACHE_* "
               "variable, or a flag given here. It takes every flag that sets a config key, so it shows how a "
               "command's flag ranks.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_job_options(parser)
    group = parser.add_argument_group("flags of other commands that set config keys (gc, prune)")
    options.add_config_flags(group, [key for key in config.FLAGS if key not in options.JOB_KEYS])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--schema", action="store_true", help="print the JSON schema of ci-cache.yml")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import json  # here: every command's module is imported by every command

    if args.schema:
        print(json.dumps(config.Config.model_json_schema(title="ci-cache.yml"), indent=2))
        return 0
    loaded = options.load_config(args, env)
    rows = config.describe(loaded)
    # What a key left to `auto` means here: `resolved` in JSON, a note in the text.
    notes = {".".join(key): note for key, note in config.auto_notes(loaded.config, osapi.IS_WINDOWS).items()}
    if args.json:
        table = {k: {"value": v, "source": s} | ({"resolved": notes[k][0]} if k in notes else {}) for k, v, s in rows}
        print(json.dumps(table, indent=2))
        return 0
    print(f"# config file: {loaded.file or 'none (defaults)'}")
    print(f"# root: {options.resolve_root(loaded.config, env)}")
    for key, value, source in rows:
        note = f"; {notes[key][1]}" if key in notes else ""
        print(f"{key} = {json.dumps(value)}  # {source}{note}")
    return 0
