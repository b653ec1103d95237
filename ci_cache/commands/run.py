"""`ci-cache run -- CMD`: set up, run the command with the job's env, merge back; all in one process."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from ci_cache import job, locks, log, retry, runner, summary
from ci_cache.commands import options
from ci_cache.errors import UsageError
from ci_cache.tools import from_config

name = "run"
brief: str | None = "set up, run a command, merge back"
description = ("Allocate the job's caches, run CMD (no shell) with their env, then merge back. Streams output, "
               "passes the exit code through, retries transient cache errors.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_job_options(parser)
    parser.add_argument("--retry", action="store_true", help="retry transient cache errors even if CMD is not uv/pip")
    parser.add_argument("--no-retry", action="store_true", help="never retry")
    parser.add_argument("--summary-json", metavar="FILE", help="also write the job summary as JSON to FILE")
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("run: no command given", hint="usage: ci-cache run [options] -- CMD ARGS...")
    ctx = options.make_context(args, env, unique_local=True)
    alloc = job.setup_or_off(ctx, in_process=True)
    policy = retry.for_command(ctx.config.retry, argv, choice=False if args.no_retry else (args.retry or None))
    if alloc.mode == "off":
        for warning in alloc.warnings:
            log.warn(warning)
        return runner.run(argv, env, retry=policy).exit_code
    around = None
    if alloc.mode == "shared":
        from ci_cache import shims

        around = locks.Holding(shims.writer_locks(ctx.store, from_config(ctx.config)),
                               timeout=ctx.config.lock_timeout)
    outcome = runner.RunOutcome(exit_code=1)
    try:
        outcome = runner.run(argv, job.job_env(env, alloc), retry=policy, around_attempt=around)
    finally:
        status = "cancelled" if outcome.interrupted else ("success" if outcome.exit_code == 0 else "failure")
        result = job.finish(ctx, status, held=alloc.lease, token=alloc.env.get(job.TOKEN_VAR)).as_json()
        result["phases"]["command"] = round(outcome.seconds, 4)
        if around is not None:
            result["phases"]["lock_wait"] = round(around.waited, 4)
        result["retries"] = outcome.retries
        result["attempts"] = outcome.attempts
        result["exit_code"] = outcome.exit_code
        result["warnings"] = alloc.warnings + result["warnings"]
        summary.report(result, env, as_json=False, json_file=args.summary_json)
    return outcome.exit_code
