"""The `ci-cache` command line. The only module that reads os.environ; everything below gets `env`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ci_cache import __version__, config, envformat, fsops, jobstatus, log, osapi, runner, session, summary
from ci_cache.errors import (
    AllocationMissing,
    CiCacheError,
    Interrupted,
    NothingAllocated,
    UsageError,
    VerifyFailed,
)
from ci_cache.providers import job_identity
from ci_cache.retry import Policy, is_cache_command

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]

EPILOG = "Docs: README.md and docs/ in the ci-cache repository. Exit codes: docs/cli.md."


def _job_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("job options (override ci-cache.yml and CI_CACHE_* variables)")
    group.add_argument("--config", metavar="FILE", help="the ci-cache.yml to use (default: nearest one upward)")
    group.add_argument("--root", metavar="DIR", help="where shared caches and job dirs live")
    group.add_argument("--job", metavar="ID", help="the job's identity (default: from the CI's variables)")
    group.add_argument("--mode", choices=["isolated", "shared", "direct", "off", "auto"])
    group.add_argument("--tools", metavar="LIST", help="comma-separated tools, e.g. uv,pip,temp")
    group.add_argument("--merge", choices=["always", "success", "never", "protected"])
    group.add_argument("--strict", action="store_true", default=None,
                       help="fail the job when seeding or merging fails (default: warn and go on)")
    return common


def _global_options(*, top: bool = False) -> argparse.ArgumentParser:
    """--debug and --quiet, accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    # Below the top level the default must not overwrite a flag given before the subcommand.
    default = False if top else argparse.SUPPRESS
    common.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="only warnings and errors on stderr")
    return common


def _store_options(*, json_output: bool = True) -> argparse.ArgumentParser:
    """--config and --root, for the commands that look at a root rather than a job."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="the ci-cache.yml to use (default: nearest one upward)")
    common.add_argument("--root", metavar="DIR", help="where shared caches and job dirs live")
    if json_output:
        common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return common


def build_parser() -> argparse.ArgumentParser:
    glob = _global_options()
    job = _job_options()
    store = _store_options()
    parser = argparse.ArgumentParser(
        prog="ci-cache",
        description="Per-job, crash-proof caches for concurrent CI jobs on one agent (uv, pip, temp dirs).",
        epilog=EPILOG,
        parents=[_global_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"ci-cache {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", parents=[glob, job], help="set up, run a command, merge back",
                       description="Allocate the job's caches, run CMD (no shell) with their env, then merge "
                       "back. Streams output, passes the exit code through, retries transient cache errors.")
    p.add_argument("--retry", action="store_true", help="retry transient cache errors even if CMD is not uv/pip")
    p.add_argument("--no-retry", action="store_true", help="never retry")
    p.add_argument("--summary-json", metavar="FILE", help="also write the job summary as JSON to FILE")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS", help="the command to run")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("setup", parents=[glob, job], help="allocate the job's caches and print their env",
                       description="Allocate the job's caches and print the env its later steps need, in the "
                       "CI's own format. `finish` later finds the allocation by the job's identity.")
    p.add_argument("--format", choices=sorted(envformat.FORMATS),
                   help="default: bash, powershell on Windows; json and github print the allocation as JSON")
    p.set_defaults(handler=cmd_setup)

    p = sub.add_parser("finish", parents=[glob, job], help="merge the job's new entries back and release it",
                       description="Merge what the job added into the shared caches (following the merge "
                       "policy), release and delete the job dir, and print a summary.")
    p.add_argument("--status", metavar="WORD", default="success",
                   help="the job's result as the CI words it (GitHub's job.status, GitLab's CI_JOB_STATUS, "
                   "Jenkins' currentBuild.currentResult), for `merge: success`; an unknown word counts as failure")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(handler=cmd_finish)

    p = sub.add_parser("status", parents=[glob, store], help="shared caches, live and stale jobs")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("gc", parents=[glob, store], help="reclaim the dirs of crashed jobs and leftover temp dirs")
    p.add_argument("--grace", metavar="DURATION", help="only reclaim dead jobs older than this (default: gc.grace)")
    p.set_defaults(handler=cmd_gc)

    p = sub.add_parser("verify", parents=[glob, store], help="check the shared caches' invariants; --fix repairs",
                       description="Check the shared uv cache (or the uv cache at PATH): every pointer names an "
                       "existing archive, no dangling links, no leftover temp dirs. Exit 5 on an error.")
    p.add_argument("path", nargs="?", help="a uv cache dir (default: the shared uv cache under the root)")
    p.add_argument("--fix", action="store_true", help="remove what is provably broken, never a valid entry")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("prune", parents=[glob, store], help="bound the shared caches by size and age",
                       description="Run `uv cache prune`, then evict least recently used whole entries until each "
                       "shared cache is under --max-size and nothing is older than --max-age.")
    p.add_argument("--max-size", metavar="SIZE", help="e.g. 20GB (default: prune.max_size)")
    p.add_argument("--max-age", metavar="DURATION", help="e.g. 30d (default: prune.max_age)")
    p.add_argument("--ci", action="store_true", default=None, help="use `uv cache prune --ci`")
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser("doctor", parents=[glob, _store_options(json_output=False)],
                       help="check this agent and explain what to fix")
    p.set_defaults(handler=cmd_doctor)

    p = sub.add_parser("config", parents=[glob, job], help="show the effective config and where each value came from",
                       description="Print the effective config, each value with its source: default, the file "
                       "and line, a CI_CACHE_* variable, or a flag given here.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of ci-cache.yml")
    p.set_defaults(handler=cmd_config)

    p = sub.add_parser("demo", parents=[glob], help="concurrent jobs against a local index: see it work",
                       description="Build a small package index, serve it on 127.0.0.1, and run concurrent "
                       "isolated uv jobs through ci-cache: two waves, the second one warm.")
    p.add_argument("--jobs", type=int, default=4, help="concurrent jobs per wave (default 4)")
    p.add_argument("--root", metavar="DIR", help="ci-cache root to use (default: a temp dir)")
    p.set_defaults(handler=cmd_demo)

    return parser


def build_shim_parser() -> argparse.ArgumentParser:
    """The hidden `_shim` entry the shared-mode shims call; kept out of the user-facing help."""
    parser = argparse.ArgumentParser(prog="ci-cache _shim", parents=[_global_options(top=True)])
    parser.add_argument("tool_command")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=cmd_shim)
    return parser


# ---------------------------------------------------------------------------------------------------
# Shared plumbing.


def _flags(args: argparse.Namespace) -> dict[config.KeyPath, Any]:
    tools = getattr(args, "tools", None)
    return {
        ("root",): getattr(args, "root", None),
        ("mode",): getattr(args, "mode", None),
        ("tools",): [t.strip() for t in tools.split(",") if t.strip()] if tools else None,
        ("merge",): getattr(args, "merge", None),
        ("strict",): getattr(args, "strict", None),
    }


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> config.LoadedConfig:
    loaded, warnings = config.load(env=env, cwd=Path.cwd(), explicit_file=getattr(args, "config", None),
                                   flags=_flags(args))
    for warning in warnings:
        log.warn(warning)
    return loaded


def resolve_root(cfg: config.Config, env: Mapping[str, str]) -> Path:
    root = cfg.root or osapi.default_root(env, Path.home())
    return Path(os.path.abspath(os.path.expanduser(root)))


def make_context(args: argparse.Namespace, env: Mapping[str, str], *, unique_local: bool = False) -> session.Context:
    cfg = load_config(args, env).config
    identity = job_identity(env, getattr(args, "job", None))
    if unique_local and identity.provider == "local" and not (getattr(args, "job", None) or env.get("CI_CACHE_JOB")):
        # Each local `run` is its own job; setup/finish pairs share the cwd-based id instead.
        from dataclasses import replace

        identity = replace(identity, job_id=f"local-run:{os.getpid()}:{time.time_ns()}")
    return session.Context(config=cfg, env=env, cwd=Path.cwd(), windows=osapi.IS_WINDOWS, identity=identity,
                           root=resolve_root(cfg, env))


def _job_env(base: Mapping[str, str], alloc: session.Allocation) -> dict[str, str]:
    env = dict(base)
    env.update(alloc.env)
    if alloc.path_prepend:
        env["PATH"] = os.pathsep.join([*alloc.path_prepend, env.get("PATH", "")])
    return env


def _report(result: dict[str, Any], env: Mapping[str, str], *, as_json: bool, json_file: str | None = None) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        log.info(summary.text(result).removeprefix("ci-cache: "))
    if json_file:
        fsops.write_atomic(Path(json_file), json.dumps(result, indent=2, default=str).encode())
    step_summary = env.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with contextlib.suppress(OSError), open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(summary.markdown(result))


# ---------------------------------------------------------------------------------------------------
# Commands.


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("run: no command given", hint="usage: ci-cache run [options] -- CMD ARGS...")
    ctx = make_context(args, env, unique_local=True)
    try:
        alloc = session.setup(ctx, in_process=True)
    except CiCacheError as exc:
        if ctx.strict or isinstance(exc, UsageError):
            raise
        log.warn(f"{exc}; running the command without ci-cache")
        return runner.run(argv, env, policy=Policy.from_config(ctx.config.retry),
                          retry=not args.no_retry and (args.retry or is_cache_command(argv))).exit_code
    job_env = _job_env(env, alloc)
    policy = Policy.from_config(ctx.config.retry)
    retry = not args.no_retry and (args.retry or is_cache_command(argv))
    around = _shared_locks(ctx, alloc) if alloc.mode == "shared" else None
    outcome = runner.RunOutcome(exit_code=1)
    try:
        outcome = runner.run(argv, job_env, policy=policy, retry=retry, around_attempt=around)
    finally:
        status = "cancelled" if outcome.interrupted else ("success" if outcome.exit_code == 0 else "failure")
        result = session.finish(ctx, status, held=alloc.lease).as_json()
        result["phases"]["command"] = round(outcome.seconds, 4)
        result["retries"] = outcome.retries
        result["attempts"] = outcome.attempts
        result["exit_code"] = outcome.exit_code
        result["warnings"] = alloc.warnings + result["warnings"]
        _report(result, env, as_json=False, json_file=args.summary_json)
    return outcome.exit_code


def _shared_locks(
    ctx: session.Context, alloc: session.Allocation
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """Shared mode: hold every covered cache's writer lock around each attempt of the command."""
    from ci_cache import locks
    from ci_cache.tools import from_config

    names = sorted(t.name for t in from_config(ctx.config) if t.has_shared_cache)

    @contextlib.contextmanager
    def hold() -> Iterator[object]:
        with contextlib.ExitStack() as stack:
            for name in names:
                handle, waited = locks.acquire(ctx.store.write_lock(name), timeout=ctx.config.lock_timeout,
                                               purpose=f"shared {name} cache")
                alloc.phases["lock_wait"] = alloc.phases.get("lock_wait", 0.0) + waited
                stack.enter_context(handle)
            yield None

    return hold


def cmd_setup(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    ctx = make_context(args, env)
    fmt = args.format or ("powershell" if osapi.IS_WINDOWS else "bash")
    try:
        alloc = session.setup(ctx, in_process=False)
    except CiCacheError as exc:
        if ctx.strict or isinstance(exc, UsageError):  # a busy job id (JobBusy) is a UsageError: never `off`
            raise
        log.warn(f"{exc}; the job runs without ci-cache")
        alloc = session.Allocation(job=ctx.identity.job_id, key=ctx.key, job_dir=Path(), mode="off",
                                   env={session.TOKEN_VAR: session.NO_TOKEN}, warnings=[str(exc)])
    for warning in alloc.warnings:
        log.warn(warning)
    export = envformat.EnvExport(env=alloc.env, path_prepend=alloc.path_prepend, windows=osapi.IS_WINDOWS,
                                 ci_env=env, document=alloc.as_json())
    try:
        text = envformat.emit(fmt, export)
    except CiCacheError:
        if alloc.mode != "off":
            # nothing was printed: leave no job (nor lease holder) behind
            session.finish(ctx, "cancelled", token=alloc.env[session.TOKEN_VAR])
        raise
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    log.info(f"job {alloc.job} set up ({alloc.mode}) in {alloc.job_dir}")
    return 0


def cmd_finish(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    ctx = make_context(args, env)
    status, unknown = jobstatus.resolve(args.status)
    if unknown:
        log.warn(unknown)
    try:
        result = session.finish(ctx, status).as_json()
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
    _report(result, env, as_json=args.json)
    return 0


def cmd_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import status
    from ci_cache.store import Store

    cfg = load_config(args, env).config
    data = status.collect(Store(resolve_root(cfg, env)))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(status.render(data), file=sys.stderr)
    return 0


def cmd_gc(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import gc
    from ci_cache.store import Store

    cfg = load_config(args, env).config
    grace = config.parse_duration(args.grace) if args.grace else cfg.gc.grace
    report = gc.collect(Store(resolve_root(cfg, env)), grace=grace)
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        log.info(f"gc: reclaimed {len(report.reclaimed_jobs)} dead job(s) ({report.bytes_freed / 2**20:.1f} MiB), "
                 f"{len(report.reclaimed_temp)} temp dir(s); {len(report.live_jobs)} live job(s) left alone")
    return 0


def cmd_verify(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import verify
    from ci_cache.store import Store
    from ci_cache.tools import BUILTINS

    cfg = load_config(args, env).config
    cache = Path(args.path) if args.path else Store(resolve_root(cfg, env)).shared_cache("uv")
    uv = BUILTINS["uv"]()
    report = verify.check(uv, cache, grace=cfg.gc.grace)
    if args.fix:
        removed = verify.fix(report)
        log.info(f"verify --fix: removed {removed} broken or leftover item(s)")
        report = verify.check(uv, cache, grace=cfg.gc.grace)
    if args.json:
        print(json.dumps({"cache": str(cache), "ok": report.ok, "findings": [
            {"kind": f.kind, "path": f.path, "problem": f.problem} for f in report.findings]}, indent=2))
    else:
        print(verify.render(report), file=sys.stderr)
    if not report.ok:
        raise VerifyFailed(f"{cache}: {len(report.errors)} broken entr{'y' if len(report.errors) == 1 else 'ies'}",
                           hint="run `ci-cache verify --fix`")
    return 0


def cmd_prune(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import prune
    from ci_cache.store import Store
    from ci_cache.tools import from_config

    cfg = load_config(args, env).config
    max_size = config.parse_size(args.max_size) if args.max_size else cfg.prune.max_size
    max_age = config.parse_duration(args.max_age) if args.max_age else cfg.prune.max_age
    store = Store(resolve_root(cfg, env))
    reports = prune.prune_store(store, from_config(cfg), max_size=max_size, max_age=max_age,
                                ci=cfg.prune.uv_ci if args.ci is None else args.ci, env=env,
                                lock_timeout=cfg.lock_timeout)
    if args.json:
        print(json.dumps([r.__dict__ for r in reports], indent=2))
    for report in reports:
        prune.log_report(report)
    return 0


def cmd_doctor(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import doctor
    from ci_cache.store import Store

    cfg = load_config(args, env).config
    diagnosis = doctor.diagnose(Store(resolve_root(cfg, env)), env, windows=osapi.IS_WINDOWS)
    print(doctor.render(diagnosis), file=sys.stderr)
    if not diagnosis.ok:
        raise VerifyFailed("doctor found problems", hint="see the advice above")
    return 0


def cmd_config(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.schema:
        print(json.dumps(config.Config.model_json_schema(), indent=2))
        return 0
    loaded = load_config(args, env)
    rows = config.describe(loaded)
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2, default=str))
        return 0
    print(f"# config file: {loaded.file or 'none (defaults)'}")
    print(f"# root: {resolve_root(loaded.config, env)}")
    for key, value, source in rows:
        print(f"{key} = {json.dumps(value, default=str)}  # {source}")
    return 0


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import demo

    return demo.main(jobs=args.jobs, root=Path(args.root) if args.root else None, env=env)


def cmd_shim(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from ci_cache import locks, shims
    from ci_cache.tools import from_config

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    cfg = load_config(args, env).config
    root = resolve_root(cfg, env)
    tool = next((t for t in from_config(cfg) if args.tool_command in t.commands), None)
    bin_dir = Path(env.get("CI_CACHE_JOB_DIR", "")) / "bin"
    real_env = dict(env)
    real_env["PATH"] = shims.path_without(bin_dir, env.get("PATH", ""))
    command = [args.tool_command, *argv]
    policy = Policy.from_config(cfg.retry)
    if tool is None:
        return runner.run(command, real_env, policy=policy, retry=True).exit_code
    from ci_cache.store import Store

    lock_path = Store(root).write_lock(tool.name)

    @contextlib.contextmanager
    def hold() -> Iterator[object]:
        handle, _ = locks.acquire(lock_path, timeout=cfg.lock_timeout, purpose=f"shared {tool.name} cache")
        with handle:
            yield None

    return runner.run(command, real_env, policy=policy, retry=True, around_attempt=hold).exit_code


# ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    shim = argv[:1] == ["_shim"]
    args = build_shim_parser().parse_args(argv[1:]) if shim else build_parser().parse_args(argv)
    debug = args.debug or env.get("CI_CACHE_DEBUG") == "1"
    log.set_quiet(args.quiet or env.get("CI_CACHE_QUIET") == "1")
    handler: Handler = args.handler
    try:
        return handler(args, env)
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
    sys.exit(main())
