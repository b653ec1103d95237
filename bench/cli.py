"""`python -m bench`: run every strategy side by side on one machine and write the results."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from bench import (
    chart,
    cic,
    fixedcost,
    floor,
    index,
    jobs,
    model,
    plan,
    report,
    rusage,
    scale,
    stats,
    strategies,
    targets,
    wheels,
)
from bench.jobs import Setup
from bench.model import LOOPBACK, NET, RunResult, Variant
from bench.runner import Bed, probe_disk, run_wave
from ci_cache_index import IndexServer

RESULTS = Path(__file__).resolve().parent / "results"
CIC_STRATEGIES = ("cic-iso-link", "cic-iso-copy", "cic-shared")
# The targets an option leaves unmeasured on purpose: they say SKIP, not FAIL.
SKIPPED_BY = {"no_fixed_cost": ("G1.run", "G1.steps"), "no_scale": ("P4a", "P4b", "P5", "G2", "G4")}


def _tool(name: str) -> Path | None:
    """A tool next to the running interpreter (the dev venv's uv and ci-cache), else on PATH."""
    exe = Path(sys.executable).parent / (name + (".exe" if os.name == "nt" else ""))
    if exe.is_file():
        return exe
    found = shutil.which(name)
    return Path(found) if found else None


def _commit() -> str:
    """The repo's commit (the product and the bench measured), `+dirty` with uncommitted changes."""
    repo = str(Path(__file__).resolve().parent.parent)
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "ci_cache", "ci_cache_index", "bench", ":!bench/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _version(tool: Path) -> str:
    proc = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    return (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1] if proc.returncode == 0 else "?"


def ci_cache_works(cli: Path, env: dict[str, str]) -> str:
    """Empty when `ci-cache run -- <python>` works in a scratch root, else why not."""
    with tempfile.TemporaryDirectory(prefix="bench-cic-") as tmp:
        cmd = [str(cli), "run", "--job", "probe", "--root", tmp, "--", sys.executable, "-c", "pass"]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    return "" if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"


def _result_stem(now: dt.datetime, quick: bool, fs: str) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", platform.node() or "host")
    return f"{now:%Y-%m-%d}-{host}" + ("-quick" if quick else "") + ("-tmpfs" if fs.startswith("tmpfs") else "")


def _progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _strategy(name: str, args: argparse.Namespace) -> strategies.Strategy:
    strategy = strategies.REGISTRY[name]
    return strategy.with_via(args.cic_via) if isinstance(strategy, cic.CiCache) else strategy


@contextmanager
def serve_networks(root: Path, args: argparse.Namespace, wanted: Sequence[str]) -> Iterator[dict[str, IndexServer]]:
    """One index server per network the variants use, all on the same files; yields network -> server.

    Both run for the whole of the waves, so the two networks' waves interleave like the variants do."""
    profiles = {LOOPBACK: None, NET: args.network}
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(index.serve(root, simple_max_age=args.simple_max_age, network=profiles[name]))
            for name in wanted
        }


def beds(args: argparse.Namespace, setups: dict[str, Setup], variants: list[Variant], work: Path) -> list[Bed]:
    """A bed per variant; a network variant's jobs reach the index through that network's server."""
    return [
        Bed(_strategy(v.strategy, args), v, work / "state" / v.key, work / "jobs" / v.key, setups[v.network])
        for v in variants
    ]


def run_strategies(run: RunResult, args: argparse.Namespace, setups: dict[str, Setup], variants: list[Variant],
                   work: Path) -> None:
    planned = beds(args, setups, variants, work)
    for bed in planned:
        bed.prepare()
        wave = run_wave(bed, args.cold_jobs, warm=False, repeat=0)
        run.waves.append(wave)
        _progress(f"{bed.variant.key} cold N={args.cold_jobs}: {wave.makespan:.2f} s")
    total = args.repeats * len(planned) * len(args.n)
    done = 0
    # Repeats are the outer loop, so a burst of load from elsewhere hits every variant (and both
    # networks) alike.
    for r in range(1, args.repeats + 1):
        for bed in planned:
            for n in args.n:
                wave = run_wave(bed, n, warm=True, repeat=r)
                run.waves.append(wave)
                done += 1
                _progress(f"[{done}/{total}] {bed.variant.key} N={n} r{r}: {wave.makespan:.2f} s")
    if args.disk_probe:
        for bed in planned:
            if bed.variant.network == LOOPBACK:  # the network changes no byte on disk
                run.disk[bed.variant.key] = probe_disk(bed)
    shared = next((b for b in planned if b.variant.key == stats.SHARED), None)
    if shared is not None and floor.available():
        run.floor = floor.measure(shared.state / "cache", work / "floor", args.repeats, floor.flags(args.copy_floor))
    for bed in planned:
        jobs.rmtree(bed.state)


def _timed(run: RunResult, name: str, step: Callable[[], None]) -> None:
    t0 = time.perf_counter()
    step()
    run.meta.setdefault("step_seconds", {})[name] = round(time.perf_counter() - t0, 1)


def measure_fixed_cost(run: RunResult, args: argparse.Namespace, cli: Path, env: dict[str, str], work: Path) -> None:
    if not rusage.available():
        for tid in ("G1.run", "G1.steps"):
            run.skipped[tid] = "counting the CPU of detached processes needs Linux (PR_SET_CHILD_SUBREAPER)"
        return
    try:
        run.fixed_cost = fixedcost.measure(cli, env, work / "fixed-cost", samples=args.cpu_samples, progress=_progress)
    except (rusage.RusageError, OSError) as exc:
        run.notes.append(f"fixed cost (G1) failed: {exc}")


def measure_scale(run: RunResult, args: argparse.Namespace, setup: Setup, home: Path, work: Path) -> None:
    scale_plan = scale.ScalePlan(packages=args.scale_packages, repeats=args.repeats, copy_floor=args.copy_floor)
    try:
        run.scale = scale.run(scale_plan, setup, home, work, run.notes)
    except (jobs.JobError, OSError, subprocess.CalledProcessError) as exc:
        run.notes.append(f"scale set failed: {exc}")
    if not args.big_scale:
        big = scale_plan.big()
        run.skipped["G4"] = (
            f"the {big.packages:,}-package scale point (about {big.packages * scale.CACHE_FILES_PER_PACKAGE:,} files) "
            "was left out (it is off by default in --quick); "
            "measure it with `python -m bench --quick --big-scale` (docs/benchmarks.md says how long it takes)"
        )
        return
    try:
        run.big_scale = scale.run_big(scale_plan, setup, home, work, run.notes)
    except (jobs.JobError, OSError, subprocess.CalledProcessError) as exc:
        run.notes.append(f"big scale point failed: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    args = plan.parse_args(argv)
    out = args.out or RESULTS
    if args.report is not None:
        publish(model.load(args.report), args.report.parent, args.report.stem, chart_wanted=not args.no_chart)
        return 0
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    run = RunResult()
    uv, cic_cli = _tool("uv"), _tool("ci-cache")
    if uv is None:
        print("bench: uv not found next to the interpreter or on PATH", file=sys.stderr)
        return 2
    home = wheels.dev_home(os.environ)
    try:
        work_parent = plan.work_parent(args, home)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    base_env = jobs.clean_env(os.environ)
    # uv on PATH: ci-cache's shared-mode shims find the real uv there, after their own dir.
    base_env["PATH"] = os.pathsep.join([str(uv.parent), base_env.get("PATH", "")])
    for flag, ids in SKIPPED_BY.items():
        if getattr(args, flag):
            run.skipped.update(dict.fromkeys(ids, f"--{flag.replace('_', '-')}"))
    needs_cic = any(s in CIC_STRATEGIES for s in args.strategies) or not args.no_scale or not args.no_fixed_cost
    cic_problem = "ci-cache CLI not found" if cic_cli is None else ""
    if cic_cli is not None and needs_cic:
        cic_problem = ci_cache_works(cic_cli, base_env)
    if cic_problem:
        run.notes.append(f"ci-cache strategies, the fixed cost and the scale set skipped: {cic_problem}")
        args.strategies = [s for s in args.strategies if s not in CIC_STRATEGIES]
        args.no_scale = args.no_fixed_cost = True
    index_root, wheel_files = wheels.ensure_realistic(home)
    names = wheels.SMALL if args.requirements == "small" else wheels.REALISTIC
    work_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-run-", dir=work_parent))
    variants = plan.variants(args, run.notes)
    fs = plan.filesystem_of(work_parent)
    run.meta = {
        "date": now.isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
        "uv": _version(uv),
        "ci_cache": _version(cic_cli) if cic_cli is not None and not cic_problem else "n/a",
        "commit": _commit(),
        "quick": args.quick,
        "ns": args.n,
        "repeats": args.repeats,
        "cold_jobs": args.cold_jobs,
        "cic_via": args.cic_via,
        "requirements": list(names),
        "index_wheels": len(wheel_files),
        "simple_max_age": args.simple_max_age,
        "network": args.network.describe(),
        "variants": [v.key for v in variants],
        "work_dir": str(work_parent),
        "work_fs": fs,
    }
    try:
        reqs = wheels.write_requirements(work / "requirements.txt", names)
        ci_cache_cli = cic_cli if cic_cli is not None else Path("ci-cache")
        setup = Setup(uv, Path(sys.executable), "", reqs, base_env, ci_cache_cli)
        if not args.no_fixed_cost:
            _timed(run, "fixed_cost", lambda: measure_fixed_cost(run, args, ci_cache_cli, base_env, work))
        with serve_networks(index_root, args, plan.networks(variants)) as servers:
            setups = {name: replace(setup, index_url=srv.url) for name, srv in servers.items()}
            _timed(run, "waves", lambda: run_strategies(run, args, setups, variants, work))
        if not args.no_scale:
            _timed(run, "scale", lambda: measure_scale(run, args, setup, home, work))
    finally:
        if args.keep:
            _progress(f"work dir kept: {work}")
        else:
            jobs.rmtree(work)
    run.meta["duration_s"] = round(time.perf_counter() - started, 1)
    publish(run, out, _result_stem(now, args.quick, fs), chart_wanted=not args.no_chart)
    return 0


def publish(run: RunResult, out: Path, stem: str, *, chart_wanted: bool) -> None:
    """Write `<stem>.json`, `.md` and (if matplotlib is there) `.png` under `out`; print the table."""
    descriptions = {}
    for key in stats.variants(run):
        name = Variant.parse(key).strategy
        if name in strategies.REGISTRY:
            descriptions[name] = strategies.REGISTRY[name].models
    if chart_wanted:
        run.notes = [n for n in run.notes if not n.startswith(chart.SKIPPED)]
        note = chart.draw(run, out / f"{stem}.png")
        if note:
            run.notes.append(note)
    model.save(run, out / f"{stem}.json")
    (out / f"{stem}.md").write_text(report.markdown(run, descriptions), encoding="utf-8")
    print(report.text(run))
    _progress(f"wrote {out / stem}.json and .md ({run.meta.get('duration_s', '?')} s of measuring)")
    failed = [t.id for t in targets.compute(run) if t.verdict == "FAIL"]
    if failed:
        _progress(f"targets not met (reported, not enforced): {', '.join(failed)}")
