"""The `ci-cache` command line: the root parser, the command registry's lookup, and the one error handler.

The only module that reads os.environ; every command gets `env`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ci_cache import __version__, log
from ci_cache.commands import COMMANDS, options
from ci_cache.errors import CiCacheError, Interrupted

# The flags `ci-cache` itself takes before a command name (options.add_global_options).
_GLOBAL_FLAGS = frozenset({"--debug", "-q", "--quiet"})
EPILOG = "Docs: README.md and docs/ in the ci-cache repository. Exit codes: docs/cli.md."


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own, told the terminal's width rather than asking shutil for it.

    argparse makes a formatter for every argument it adds (to check its metavar), and argparse's asks
    `shutil.get_terminal_size()`, importing shutil and the compression modules it loads: 3 ms of every job's
    CPU, for a width that only help text uses. This finds it as shutil does: COLUMNS, else the terminal.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


def _columns() -> int:
    with contextlib.suppress(KeyError, ValueError):
        columns = int(os.environ["COLUMNS"])
        if columns > 0:
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    return 80


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command `ci-cache --help` lists; `only`: of that one command alone, so that a job's
    `run` or `setup` imports and builds nothing of the other commands."""
    parser = argparse.ArgumentParser(
        prog="ci-cache",
        description="Per-job, crash-proof caches for concurrent CI jobs on one agent (uv, pip, temp dirs).",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    options.add_global_options(parser, top=True)
    parser.add_argument("--version", action="version", version=f"ci-cache {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values() if only is None else [COMMANDS[only]]:
        if command.brief is not None:
            p = sub.add_parser(command.name, help=command.brief, description=command.description or command.brief,
                               formatter_class=_HelpFormatter)
            options.add_global_options(p, top=False)
            command.add_arguments(p)
    return parser


def _hidden_parser(name: str) -> argparse.ArgumentParser:
    """A hidden command's own parser, so that it stays out of the user-facing help."""
    parser = argparse.ArgumentParser(prog=f"ci-cache {name}", formatter_class=_HelpFormatter)
    options.add_global_options(parser, top=True)
    COMMANDS[name].add_arguments(parser)
    parser.set_defaults(command=name)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command argv names, when only global flags come before it; None leaves it to the full parser
    (help, a typo, `--version`)."""
    for word in argv:
        if word in COMMANDS:
            return word
        if word not in _GLOBAL_FLAGS:
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    hidden = bool(argv) and argv[0] in COMMANDS and COMMANDS[argv[0]].brief is None
    if hidden:
        args = _hidden_parser(argv[0]).parse_args(argv[1:])
    else:
        args = build_parser(_named_command(argv)).parse_args(argv)
    debug = args.debug or env.get("CI_CACHE_DEBUG") == "1"
    log.set_quiet(args.quiet or env.get("CI_CACHE_QUIET") == "1")
    try:
        return COMMANDS[args.command].run(args, env)
    except CiCacheError as exc:
        if debug:
            import traceback

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
    leave(main())


def leave(code: int) -> NoReturn:
    """Exit with `code` at once: stdio flushed, without the interpreter's teardown.

    Tearing the interpreter down frees every module one by one: 9 ms of CPU here for the modules a job
    loads, a fifth of all that a `ci-cache run` costs. Nothing of ours needs it: files are closed where they
    are written, and locks go with the process. Where something else might (an atexit handler, a thread of
    the fleet tier still running), the normal exit runs.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    threading = sys.modules.get("threading")
    if getattr(atexit, "_ncallbacks", lambda: 1)() or (threading is not None and threading.active_count() > 1):
        sys.exit(code)
    os._exit(code)


def shim_entry() -> None:
    """The Windows shims' launchers (`shims.LAUNCHER_ENTRY`): the command is the launcher's own name."""
    from pathlib import Path

    from ci_cache import shims

    leave(main([shims.SHIM_SUBCOMMAND, Path(sys.argv[0]).stem, "--", *sys.argv[1:]]))
