"""`ci-cache finish`: merge the job's new entries back, release its allocation, and print a summary."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping

from ci_cache import job, jobstatus, log, summary
from ci_cache.commands import options
from ci_cache.errors import AllocationMissing, NothingAllocated

name = "finish"
brief: str | None = "merge the job's new entries back and release it"
description = ("Merge what the job added into the shared caches (following the merge policy), release and "
               "delete the job dir, and print a summary.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_job_options(parser)
    parser.add_argument("--status", metavar="WORD", default="success",
                        help="the job's result as the CI words it (GitHub's job.status, GitLab's CI_JOB_STATUS, "
                        "Jenkins' currentBuild.currentResult), for `merge: success`; an unknown word counts as "
                        "failure")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    ctx = options.make_context(args, env)
    status, unknown = jobstatus.resolve(args.status)
    if unknown:
        log.warn(unknown)
    try:
        result = job.finish(ctx, status).as_json()
    except AllocationMissing as exc:
        # No second error after a failed or `off` setup; a missing or foreign allocation fails only --strict.
        if ctx.strict and not isinstance(exc, NothingAllocated):
            raise
        (log.info if isinstance(exc, NothingAllocated) else log.warn)(f"{exc}; nothing to finish")
        if args.json:
            print(json.dumps({"job": ctx.identity.job_id, "status": status,
                              "warnings": [w for w in (unknown, str(exc)) if w]}))
        return 0
    if unknown:
        result["warnings"].insert(0, unknown)
    summary.report(result, env, as_json=args.json)
    return 0
