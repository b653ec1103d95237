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
from collections.abc import Sequence
from pathlib import Path

from bench import chart, cic, floor, index, jobs, model, report, scale, stats, strategies, targets, wheels
from bench.jobs import Setup
from bench.model import RunResult, Variant
from bench.runner import Bed, probe_disk, run_wave

RESULTS = Path(__file__).resolve().parent / "results"
CIC_STRATEGIES = ("cic-iso-link", "cic-iso-copy", "cic-shared")
# Copy mode costs a full file copy per installed file, so it is run only where a comparison needs it.
FULL_COPY = ("shared", "cp-al", "cic-iso-link", "cic-iso-copy", "cic-shared")
QUICK_COPY = ("shared", "cic-iso-link")
# `--quick` runs what the targets compare, on the realistic set, and skips the slow extras (zip, cp -al).
QUICK_STRATEGIES = ("shared", "empty", "tar-zstd", "cic-iso-link")
TMPFS_MIN_FREE = 8 << 30


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _ints(text: str) -> list[int]:
    values = [int(p) for p in _csv(text)]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("want positive integers, comma-separated, like 1,2,4,8")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a run under 2 minutes: N=4, the targets' strategies")
    p.add_argument("--n", type=_ints, help="concurrent job counts (default 1,2,4,8; quick: 4)")
    p.add_argument("--repeats", type=int, help="warm waves per variant and N (default 3)")
    p.add_argument("--strategies", type=_csv, help=f"subset of {','.join(strategies.REGISTRY)}")
    p.add_argument("--copy-for", type=_csv, help="strategies also run with UV_LINK_MODE=copy")
    p.add_argument(
        "--requirements",
        choices=("realistic", "small"),
        default="realistic",
        help="the set each job installs: about 50 wheels with numpy and pandas, or a small pure-Python set",
    )
    p.add_argument("--scale-packages", type=int, help="100-file packages in the scale cache (default 500)")
    p.add_argument("--no-scale", action="store_true", help="skip the seed/merge measurements (P4, P5)")
    p.add_argument(
        "--cic-via",
        choices=("run", "steps"),
        default="run",
        help="drive ci-cache jobs by one `ci-cache run` (default) or `setup` + `finish` steps",
    )
    p.add_argument("--cold-jobs", type=int, default=1, help="jobs of the wave that warms each variant")
    p.add_argument("--simple-max-age", type=int, default=0, help="index page max-age; 0 revalidates")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON, markdown and chart go")
    p.add_argument("--work", type=Path, help="scratch dir for caches and venvs (default: tmpfs if big enough)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (caches, archives) afterwards")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--report", type=Path, metavar="JSON", help="only re-render the table, markdown and chart of a run")
    args = p.parse_args(argv)
    args.n = args.n or ([4] if args.quick else [1, 2, 4, 8])
    args.repeats = args.repeats or 3
    args.scale_packages = args.scale_packages or (100 if args.quick else 500)
    args.strategies = args.strategies or list(QUICK_STRATEGIES if args.quick else strategies.REGISTRY)
    if args.copy_for is None:
        args.copy_for = QUICK_COPY if args.quick else FULL_COPY
    unknown = sorted(set(args.strategies) - set(strategies.REGISTRY))
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {', '.join(strategies.REGISTRY)}")
    return args


def _tool(name: str) -> Path | None:
    """A tool next to the running interpreter (the dev venv's uv and ci-cache), else on PATH."""
    exe = Path(sys.executable).parent / (name + (".exe" if os.name == "nt" else ""))
    if exe.is_file():
        return exe
    found = shutil.which(name)
    return Path(found) if found else None


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


def plan_variants(args: argparse.Namespace, notes: list[str]) -> list[Variant]:
    out: list[Variant] = []
    for name in args.strategies:
        if not strategies.available(name):
            notes.append(f"{name} skipped: its tools are not installed here")
            continue
        modes = strategies.REGISTRY[name].link_modes
        out += [Variant(name, m) for m in modes if m == "default" or name in args.copy_for]
    return out


def _result_stem(now: dt.datetime, quick: bool) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", platform.node() or "host")
    return f"{now:%Y-%m-%d}-{host}" + ("-quick" if quick else "")


def _progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _strategy(name: str, args: argparse.Namespace) -> strategies.Strategy:
    strategy = strategies.REGISTRY[name]
    return strategy.with_via(args.cic_via) if isinstance(strategy, cic.CiCache) else strategy


def run_strategies(run: RunResult, args: argparse.Namespace, setup: Setup, variants: list[Variant], work: Path) -> None:
    beds = [Bed(_strategy(v.strategy, args), v, work / "state" / v.key, work / "jobs" / v.key, setup) for v in variants]
    for bed in beds:
        bed.prepare()
        wave = run_wave(bed, args.cold_jobs, warm=False, repeat=0)
        run.waves.append(wave)
        _progress(f"{bed.variant.key} cold N={args.cold_jobs}: {wave.makespan:.2f} s")
    total = args.repeats * len(beds) * len(args.n)
    done = 0
    # Repeats are the outer loop, so a burst of load from elsewhere hits every variant alike.
    for r in range(1, args.repeats + 1):
        for bed in beds:
            for n in args.n:
                wave = run_wave(bed, n, warm=True, repeat=r)
                run.waves.append(wave)
                done += 1
                _progress(f"[{done}/{total}] {bed.variant.key} N={n} r{r}: {wave.makespan:.2f} s")
    for bed in beds:
        run.disk[bed.variant.key] = probe_disk(bed)
    shared = next((b for b in beds if b.variant.key == "shared"), None)
    if shared is not None and floor.available():
        run.floor = floor.measure(shared.state / "cache", work / "floor", args.repeats)
    for bed in beds:
        jobs.rmtree(bed.state)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
    base_env = jobs.clean_env(os.environ)
    # uv on PATH: ci-cache's shared-mode shims find the real uv there, after their own dir.
    base_env["PATH"] = os.pathsep.join([str(uv.parent), base_env.get("PATH", "")])
    needs_cic = any(s in CIC_STRATEGIES for s in args.strategies) or not args.no_scale
    cic_problem = "ci-cache CLI not found" if cic_cli is None else ""
    if cic_cli is not None and needs_cic:
        cic_problem = ci_cache_works(cic_cli, base_env)
    if cic_problem:
        run.notes.append(f"ci-cache strategies and the scale set skipped: {cic_problem}")
        args.strategies = [s for s in args.strategies if s not in CIC_STRATEGIES]
        args.no_scale = True
    home = wheels.dev_home(os.environ)
    index_root, wheel_files = wheels.ensure_realistic(home)
    names = wheels.SMALL if args.requirements == "small" else wheels.REALISTIC
    work_parent = args.work or default_work_parent(home)
    work = Path(tempfile.mkdtemp(prefix="bench-run-", dir=_mkdir(work_parent)))
    variants = plan_variants(args, run.notes)
    run.meta = {
        "date": now.isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
        "uv": _version(uv),
        "ci_cache": _version(cic_cli) if cic_cli is not None and not cic_problem else "n/a",
        "quick": args.quick,
        "ns": args.n,
        "repeats": args.repeats,
        "cold_jobs": args.cold_jobs,
        "cic_via": args.cic_via,
        "requirements": list(names),
        "index_wheels": len(wheel_files),
        "simple_max_age": args.simple_max_age,
        "variants": [v.key for v in variants],
        "work_dir": str(work_parent),
        "work_fs": filesystem_of(work_parent),
    }
    try:
        reqs = wheels.write_requirements(work / "requirements.txt", names)
        with index.serve(index_root, simple_max_age=args.simple_max_age) as srv:
            ci_cache_cli = cic_cli if cic_cli is not None else Path("ci-cache")
            setup = Setup(uv, Path(sys.executable), srv.url, reqs, base_env, ci_cache_cli)
            run_strategies(run, args, setup, variants, work)
        if not args.no_scale:
            plan = scale.ScalePlan(packages=args.scale_packages, repeats=args.repeats)
            try:
                run.scale = scale.run(plan, setup, home, work, run.notes)
            except (jobs.JobError, OSError, subprocess.CalledProcessError) as exc:
                run.notes.append(f"scale set failed: {exc}")
    finally:
        if args.keep:
            _progress(f"work dir kept: {work}")
        else:
            jobs.rmtree(work)
    run.meta["duration_s"] = round(time.perf_counter() - started, 1)
    publish(run, args.out, _result_stem(now, args.quick), chart_wanted=not args.no_chart)
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
    failed = [t.id for t in targets.compute(run) if not t.passed]
    if failed:
        _progress(f"targets not met (reported, not enforced): {', '.join(failed)}")


def default_work_parent(home: Path) -> Path:
    """tmpfs when it has room: on a VM disk mounted with `discard`, deleting one copied venv takes
    seconds, and the bench deletes hundreds; a CI agent's disk does not behave like that."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= TMPFS_MIN_FREE:
        return shm / "ci-cache-bench"
    return home / "bench-work"


def filesystem_of(path: Path) -> str:
    """The type and options of the mount holding `path`, from /proc/mounts (Linux), else unknown."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    target = os.path.realpath(_mkdir(path))
    best, best_len = "unknown", -1
    for line in mounts:
        fields = line.split()
        if len(fields) >= 4:
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) > best_len:
                best, best_len = f"{fields[2]} ({fields[3]})", len(point)
    return best


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
