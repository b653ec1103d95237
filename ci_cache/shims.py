"""Shared mode across processes: shims first on PATH take ci-cache's lock around each tool call.

When `setup` and the job's commands are separate processes (GitHub steps, GitLab scripts, Jenkins
steps), nothing of ours runs around `uv ...`. So setup puts a `bin/` dir first on the job's PATH,
holding one shim per tool command. A shim takes the shared cache's writer lock, runs the real
command (found on PATH after the shim dir), and passes its exit code through. On Windows the shims
are real `.exe` launchers (distlib's), not `.cmd` files with their quoting traps.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ci_cache import fsops

SHIM_SUBCOMMAND = "_shim"


def install(bin_dir: Path, commands: Sequence[str], *, windows: bool) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
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
            fsops.write_atomic(target, script.encode())
            os.chmod(target, 0o755)


def _install_exe(bin_dir: Path, command: str) -> None:
    from distlib.scripts import ScriptMaker

    maker = ScriptMaker(None, str(bin_dir))
    maker.executable = sys.executable
    maker.variants = {""}
    maker.clobber = True
    maker.make(f"{command} = ci_cache.shims:launcher_main")


def launcher_main() -> None:
    """Entry point of the Windows `.exe` shims: the command is the launcher's own name."""
    from ci_cache.cli import main

    command = Path(sys.argv[0]).stem
    main([SHIM_SUBCOMMAND, command, "--", *sys.argv[1:]])


def path_without(bin_dir: Path, path: str) -> str:
    """PATH with the shim dir taken out, so the shim finds the real command and not itself."""
    own = os.path.normcase(os.path.abspath(bin_dir))
    keep = [p for p in path.split(os.pathsep) if p and os.path.normcase(os.path.abspath(p)) != own]
    return os.pathsep.join(keep)
