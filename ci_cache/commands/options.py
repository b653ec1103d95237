"""What the commands share: their common options, and the config, root and job Context those resolve to.

Every option that sets a config key (`config.FLAGS`) goes to the config's one precedence resolver as
the text given; an empty value (`--mode=`, `--mode ''`) means "not given", so CI templates can pass
their inputs through whether or not they are set.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_cache import config, log, osapi
from ci_cache.config import KeyPath
from ci_cache.job.context import Context
from ci_cache.providers import job_identity

JOB_KEYS: tuple[KeyPath, ...] = (("root",), ("mode",), ("tools",), ("merge",), ("strict",), ("remote", "url"),
                                 ("remote", "endpoint"), ("remote", "push"))
REMOTE_KEYS: tuple[KeyPath, ...] = (("remote", "url"), ("remote", "endpoint"))

# How each config flag shows in --help: its metavar and what it does. Boolean keys take an optional
# value: `--strict` alone is true, `--strict=false` false.
_FLAG_HELP: dict[KeyPath, tuple[str, str]] = {
    ("root",): ("DIR", "where shared caches and job dirs live"),
    ("mode",): ("", "the job's mode (default: auto, isolated on Windows and direct elsewhere)"),
    ("tools",): ("LIST", "comma-separated tools, e.g. uv,pip,temp"),
    ("merge",): ("", "when finish merges the job's new entries back (default: always)"),
    ("strict",): ("BOOL", "fail the job when seeding or merging fails (default: warn and go on)"),
    ("gc", "grace"): ("DURATION", "only reclaim dead jobs older than this (default: gc.grace)"),
    ("prune", "max_size"): ("SIZE", "e.g. 20GB (default: prune.max_size)"),
    ("prune", "max_age"): ("DURATION", "e.g. 30d (default: prune.max_age)"),
    ("prune", "uv_ci"): ("BOOL", "use `uv cache prune --ci` (default: prune.uv_ci)"),
    ("remote", "url"): ("URL", "the fleet cache: s3://BUCKET/PREFIX, az://CONTAINER/PREFIX or gs://BUCKET/PREFIX "
                        "(default: remote.url; unset: no remote)"),
    ("remote", "endpoint"): ("URL", "http(s)://HOST[:PORT] of an S3-compatible server, Azurite or a GCS emulator "
                             "(default: remote.endpoint)"),
    ("remote", "push"): ("", "which jobs publish to the remote (default: remote.push, else as --merge)"),
}
_BOOLEAN_KEYS = {("strict",), ("prune", "uv_ci")}


def _dest(key: KeyPath) -> str:
    return config.FLAGS[key].removeprefix("--").replace("-", "_")


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--debug and --quiet, accepted before or after the command."""
    # Below the top level the default must not overwrite a flag given before the command.
    default = False if top else argparse.SUPPRESS
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="only warnings and errors on stderr")


def add_config_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, keys: Sequence[KeyPath]) -> None:
    for key in keys:
        metavar, text = _FLAG_HELP[key]
        words = config.choices(key)
        metavar = "{" + ",".join(words) + "}" if words else metavar
        if key in _BOOLEAN_KEYS:
            parser.add_argument(config.FLAGS[key], dest=_dest(key), metavar=metavar, nargs="?", const="true",
                                help=f"{text}; alone: true")
        else:
            parser.add_argument(config.FLAGS[key], dest=_dest(key), metavar=metavar, help=text)


def add_config_file_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--config", metavar="FILE", help="the ci-cache.yml to use (default: nearest one upward)")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "job options (override ci-cache.yml and CI_CACHE_* variables; an empty value, as in --mode=, "
        "leaves the setting to them)")
    add_config_file_option(group)
    group.add_argument("--job", metavar="ID", help="the job's identity (default: from the CI's variables)")
    add_config_flags(group, JOB_KEYS)


def add_store_options(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """--config and --root, for the commands that look at a root rather than a job."""
    add_config_file_option(parser)
    add_config_flags(parser, [("root",)])
    if json_output:
        parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def given(text: str | None) -> str | None:
    """An option's value, None when it was left out or given empty."""
    return text if text and text.strip() else None


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> config.LoadedConfig:
    """The effective config, from the flags this command was given; warnings go to stderr."""
    flags = {key: getattr(args, _dest(key)) for key in config.FLAGS if getattr(args, _dest(key), None) is not None}
    loaded, warnings = config.load(env=env, cwd=Path.cwd(), explicit_file=given(getattr(args, "config", None)),
                                   flags=flags)
    for warning in warnings:
        log.warn(warning)
    return loaded


def resolve_root(cfg: config.Config, env: Mapping[str, str]) -> Path:
    """The root the config names (`~` is the env's home), else the platform's default, as an absolute path."""
    given = env.get("USERPROFILE" if osapi.IS_WINDOWS else "HOME")
    home = Path(given) if given else Path.home()
    root = str(cfg.root or osapi.default_root(env, home))
    if root == "~" or root.startswith(("~/", "~" + os.sep)):
        root = str(home) + root[1:]
    return Path(os.path.abspath(root))


def make_context(args: argparse.Namespace, env: Mapping[str, str], *, unique_local: bool = False) -> Context:
    """The job's Context. `unique_local` (run): outside a CI, without --job, each call is its own job."""
    cfg = load_config(args, env).config
    explicit = given(getattr(args, "job", None))
    identity = job_identity(env, explicit)
    if unique_local and identity.provider == "local" and not (explicit or env.get("CI_CACHE_JOB")):
        # Each local `run` is its own job; setup/finish pairs share the cwd-based id instead.
        identity = identity._replace(job_id=f"local-run:{os.getpid()}:{time.time_ns()}")
    return Context(config=cfg, env=env, cwd=Path.cwd(), windows=osapi.IS_WINDOWS, identity=identity,
                   root=resolve_root(cfg, env))
