"""The `ci-cache` command line: the root parser, the command registry's lookup, and the one error handler.

The only module that reads os.environ; every command gets `env`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ci_cache import __version__, log, shims
from ci_cache.commands import COMMANDS, options
from ci_cache.errors import CiCacheError, Interrupted

EPILOG = "Docs: README.md and docs/ in the ci-cache repository. Exit codes: docs/cli.md."


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command `ci-cache --help` lists."""
    parser = argparse.ArgumentParser(
        prog="ci-cache",
        description="Per-job, crash-proof caches for concurrent CI jobs on one agent (uv, pip, temp dirs).",
        epilog=EPILOG,
    )
    options.add_global_options(parser, top=True)
    parser.add_argument("--version", action="version", version=f"ci-cache {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        if command.brief is not None:
            p = sub.add_parser(command.name, help=command.brief, description=command.description or command.brief)
            options.add_global_options(p, top=False)
            command.add_arguments(p)
    return parser


def _hidden_parser(name: str) -> argparse.ArgumentParser:
    """A hidden command's own parser, so that it stays out of the user-facing help."""
    parser = argparse.ArgumentParser(prog=f"ci-cache {name}")
    options.add_global_options(parser, top=True)
    COMMANDS[name].add_arguments(parser)
    parser.set_defaults(command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    hidden = bool(argv) and argv[0] in COMMANDS and COMMANDS[argv[0]].brief is None
    args = _hidden_parser(argv[0]).parse_args(argv[1:]) if hidden else build_parser().parse_args(argv)
    debug = args.debug or env.get("CI_CACHE_DEBUG") == "1"
    log.set_quiet(args.quiet or env.get("CI_CACHE_QUIET") == "1")
    try:
        return COMMANDS[args.command].run(args, env)
    except CiCacheError as exc:
        if debug:
            traceback.print_exc()
        log.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return Interrupted.exit_code
    except BrokenPipeError:
        # stdout closed early (`ci-cache config | head`): not an error of ours.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet
        return 0
    except Exception as exc:
        if debug:
            raise
        log.error(f"internal error: {type(exc).__name__}: {exc} (run again with --debug for a traceback, "
                  "and please report it)")
        return 1


def entry() -> None:
    """The `ci-cache` console script."""
    sys.exit(main())


def shim_entry() -> None:
    """The Windows shims' launchers (`shims.LAUNCHER_ENTRY`): the command is the launcher's own name."""
    sys.exit(main([shims.SHIM_SUBCOMMAND, Path(sys.argv[0]).stem, "--", *sys.argv[1:]]))
