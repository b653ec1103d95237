"""Shared mode: ci-cache's writer lock around every tool call, whether `run` or a shim starts it.

`run` holds the locks in process around its command. When `setup` and the job's commands are separate
processes (GitHub steps, GitLab scripts, Jenkins steps), nothing of ours runs around `uv ...`: so setup
puts a `bin/` dir first on the job's PATH, holding one shim per tool command. A shim runs `ci-cache
_shim` (the `run_tool` below), which takes the shared cache's writer lock, runs the real command (found
on PATH after the shim dir), and passes its exit code through. On Windows the shims are real `.exe`
launchers (distlib's), not `.cmd` files with their quoting traps.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_cache import fsops, locks, retry, runner
from ci_cache.config import Config
from ci_cache.store import Store
from ci_cache.tools import from_config
from ci_cache.tools.base import CacheTool

SHIM_SUBCOMMAND = "_shim"
# The Windows launchers' entry point: it calls `ci-cache _shim <its own name> -- ARGS`.
LAUNCHER_ENTRY = "ci_cache.cli:shim_entry"


def writer_locks(store: Store, tools: Sequence[CacheTool]) -> list[tuple[Path, str]]:
    """The locks a shared-mode command holds: the writer lock of each of the tools' shared caches."""
    return [(store.write_lock(t.name), f"shared {t.name} cache") for t in tools if t.has_shared_cache]


def install(bin_dir: Path, commands: Sequence[str], *, windows: bool) -> None:
    fsops.makedirs(bin_dir)
    for command in commands:
        if windows:
            _install_exe(bin_dir, command)
        else:
            script = (
                "#!/bin/sh\n"
                "# ci-cache shared-mode shim: takes the cache lock around the real command.\n"
                f"exec {shlex.quote(sys.executable)} -m ci_cache {SHIM_SUBCOMMAND} {shlex.quote(command)} "
                '-- "$@"\n'
            )
            target = bin_dir / command
            fsops.write_atomic(target, script.encode(), mode=0o755)


def _install_exe(bin_dir: Path, command: str) -> None:
    from distlib.scripts import ScriptMaker

    maker = ScriptMaker(None, str(bin_dir))
    maker.executable = sys.executable
    maker.variants = {""}
    maker.clobber = True
    maker.make(f"{command} = {LAUNCHER_ENTRY}")


def path_without(bin_dir: Path, path: str) -> str:
    """PATH with the shim dir taken out, so the shim finds the real command and not itself."""
    own = os.path.normcase(os.path.abspath(bin_dir))
    keep = [p for p in path.split(os.pathsep) if p and os.path.normcase(os.path.abspath(p)) != own]
    return os.pathsep.join(keep)


def run_tool(command: Sequence[str], *, config: Config, root: Path, env: Mapping[str, str]) -> int:
    """What a shim runs: the real command, under its tool's writer lock, retried on transient cache errors.

    A command no configured tool claims runs without a lock. The shim dir is the job's (CI_CACHE_JOB_DIR).
    """
    tool = next((t for t in from_config(config) if command[0] in t.commands), None)
    real_env = dict(env)
    real_env["PATH"] = path_without(Path(env.get("CI_CACHE_JOB_DIR", "")) / "bin", env.get("PATH", ""))
    around = locks.Holding(writer_locks(Store(root), [tool]), timeout=config.lock_timeout) if tool else None
    policy = retry.for_command(config.retry, command, choice=True)
    return runner.run(command, real_env, retry=policy, around_attempt=around).exit_code
