"""What the job's commands get: ci-cache's own variables and, in shared mode, the shims first on PATH."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ci_cache.job.context import TOKEN_VAR, Allocation, Context
from ci_cache.tools.base import CacheTool


def export(ctx: Context, alloc: Allocation, tools: Sequence[CacheTool], *, token: str, in_process: bool) -> None:
    """Add what a later `finish` (and a shim) needs to find the allocation; in shared mode, install the shims.

    `in_process` (run): the commands run under run's own locks, so no shim goes on their PATH.
    """
    if alloc.mode == "shared":
        from ci_cache import shims

        commands = [c for t in tools if t.has_shared_cache for c in t.commands]
        bin_dir = alloc.job_dir / "bin"
        shims.install(bin_dir, commands, windows=ctx.windows)
        if not in_process:
            alloc.path_prepend.append(str(bin_dir))
    alloc.env.update({"CI_CACHE_JOB": alloc.job, "CI_CACHE_ROOT": str(ctx.root),
                      "CI_CACHE_JOB_DIR": str(alloc.job_dir), TOKEN_VAR: token})


def applied(base: Mapping[str, str], alloc: Allocation) -> dict[str, str]:
    """`base` with the allocation's env set and its PATH dirs first: the env of a command `run` starts."""
    env = dict(base)
    env.update(alloc.env)
    if alloc.path_prepend:
        env["PATH"] = os.pathsep.join([*alloc.path_prepend, env.get("PATH", "")])
    return env


def previous(ctx: Context, alloc: Allocation) -> dict[str, Any]:
    """What setup's env changes in the shell, as it was before: each variable's earlier value (None: it was
    unset) and the dirs put first on PATH. The record keeps it for `finish --format F`, which gives it back."""
    if ctx.windows:  # Windows' variable names ignore case
        upper = {name.upper(): value for name, value in ctx.env.items()}
        before = {name: upper.get(name.upper()) for name in alloc.env}
    else:
        before = {name: ctx.env.get(name) for name in alloc.env}
    return {"env": before, "path_remove": list(alloc.path_prepend)}
