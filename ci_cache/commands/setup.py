"""`ci-cache setup`: allocate the job's caches and print their env in the CI's own format."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from ci_cache import envformat, job, log, osapi
from ci_cache.commands import options
from ci_cache.errors import CiCacheError

name = "setup"
brief: str | None = "allocate the job's caches and print their env"
description = ("Allocate the job's caches and print the env its later steps need, in the CI's own format. "
               "`finish` later finds the allocation by the job's identity.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_job_options(parser)
    parser.add_argument("--format", choices=sorted(envformat.FORMATS),
                        help="default: bash, powershell on Windows; json and github print the allocation as JSON")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    ctx = options.make_context(args, env)
    fmt = args.format or ("powershell" if osapi.IS_WINDOWS else "bash")
    alloc = job.setup_or_off(ctx, in_process=False)
    for warning in alloc.warnings:
        log.warn(warning)
    export = envformat.EnvExport(env=alloc.env, path_prepend=alloc.path_prepend, windows=osapi.IS_WINDOWS,
                                 ci_env=env, document=alloc.as_json())
    try:
        text = envformat.emit(fmt, export)
    except CiCacheError:
        if alloc.mode != "off":
            # nothing was printed: leave no job (nor lease holder) behind
            job.finish(ctx, "cancelled", token=alloc.env[job.TOKEN_VAR])
        raise
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    log.info(f"job {alloc.job} set up ({alloc.mode}) in {alloc.job_dir}")
    return 0
