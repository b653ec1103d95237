"""`ci-cache finish`: merge the job's new entries back, release its allocation, and print a summary."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from ci_cache import envformat, job, jobstatus, log, osapi, summary
from ci_cache.commands import options
from ci_cache.errors import AllocationMissing, NothingAllocated, UsageError

name = "finish"
brief: str | None = "merge the job's new entries back and release it"
description = ("Merge what the job added into the shared caches (following the merge policy), release and "
               "delete the job dir, and print a summary. With --format, also print what the shell needs to undo "
               "setup's env (TEMP, TMP, TMPDIR, UV_CACHE_DIR, ... as they were before setup).")

# The formats whose stdout is one JSON object (the summary, with the env to restore in it).
_JSON_FORMATS = ("json", "github")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_job_options(parser)
    parser.add_argument("--status", metavar="WORD", default="success",
                        help="the job's result as the CI words it (GitHub's job.status, GitLab's CI_JOB_STATUS, "
                        "Jenkins' currentBuild.currentResult), for `merge: success`; an unknown word counts as "
                        "failure")
    parser.add_argument("--format", choices=sorted(envformat.FORMATS),
                        help="print what the shell needs to undo setup's env, in the format setup printed it "
                        "(eval \"$(ci-cache finish --format bash)\"); json and github print it in the summary's JSON")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (--format json)")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    fmt = _format(args)
    ctx = options.make_context(args, env)
    status, unknown = jobstatus.resolve(args.status)
    if unknown:
        log.warn(unknown)
    try:
        finished = job.finish(ctx, status)
    except AllocationMissing as exc:
        # No second error after a failed or `off` setup; a missing or foreign allocation fails only --strict.
        if ctx.strict and not isinstance(exc, NothingAllocated):
            raise
        (log.info if isinstance(exc, NothingAllocated) else log.warn)(f"{exc}; nothing to finish")
        if fmt in _JSON_FORMATS:
            print(json.dumps({"job": ctx.identity.job_id, "status": status,
                              "warnings": [w for w in (unknown, str(exc)) if w], "env": {}, "unset": [],
                              "path_prepend": [], "path_remove": []}))
        return 0
    result = finished.as_json()
    if unknown:
        result["warnings"].insert(0, unknown)
    summary.report(result, env, as_json=False, show_text=fmt != "json")
    if fmt is not None:
        text = envformat.emit(fmt, restore_export(finished.restore, env, document=result))
        if text:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _format(args: argparse.Namespace) -> str | None:
    if args.json and args.format not in (None, "json"):
        raise UsageError(f"finish: --json and --format {args.format} ask for two outputs", hint="give one of them")
    return "json" if args.json else args.format


def restore_export(restore: Mapping[str, Any], env: Mapping[str, str], *, document: Mapping[str, Any]) -> \
        envformat.EnvExport:
    """What gives the shell back the env it had before setup: the earlier values setup recorded, the
    variables it had not set removed, and setup's dirs taken out of PATH."""
    before: Mapping[str, str | None] = restore.get("env", {})
    unset = [name for name, value in before.items() if value is None]
    path_remove = list(restore.get("path_remove", []))
    return envformat.EnvExport(
        env={name: value for name, value in before.items() if value is not None}, path_prepend=[],
        windows=osapi.IS_WINDOWS, ci_env=env, unset=unset, path_remove=path_remove,
        document={**document, "unset": unset, "path_remove": path_remove})
