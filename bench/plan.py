"""What a run measures: its options, the variants they select, and where its scratch lives."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from bench import index, strategies
from bench.model import LOOPBACK, NET, Variant
from ci_cache_index.cli import _bandwidth, _latency_ms  # the index server's own option parsers
from ci_cache_index.network import NetworkProfile

# Copy mode costs a full file copy per installed file, so it is run only where a comparison needs it.
FULL_COPY = ("shared", "cp-al", "cic-iso-link", "cic-iso-copy", "cic-shared")
QUICK_COPY = ("shared", "cic-iso-link")
# `--quick` runs what the targets compare, on the realistic set, and skips the slow extra (zip).
QUICK_STRATEGIES = ("shared", "empty", "tar-zstd", "cp-al", "cic-iso-link")
# Behind the network profile: what goal 5 compares, and in a full run the other cheap strategies too.
FULL_NET = ("shared", "empty", "tar-zstd", "cp-al", "cic-iso-link")
QUICK_NET = ("shared", "empty", "tar-zstd", "cic-iso-link")
TMPFS = Path("/dev/shm")
TMPFS_MIN_FREE = 8 << 30


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _ints(text: str) -> list[int]:
    values = [int(p) for p in _csv(text)]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("want positive integers, comma-separated, like 1,2,4,8")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Run every cache strategy side by side.")
    p.add_argument("--quick", action="store_true",
                   help="N=4, only what the targets read: about 6 minutes on an idle 2-core machine")
    p.add_argument("--n", type=_ints, help="concurrent job counts (default 1,2,4,8; quick: 4)")
    p.add_argument("--repeats", type=int, help="warm waves per variant and N (default 3)")
    p.add_argument("--strategies", type=_csv, help=f"subset of {','.join(strategies.REGISTRY)}")
    p.add_argument("--copy-for", type=_csv, help="strategies also run with UV_LINK_MODE=copy")
    p.add_argument("--net-for", type=_csv, help="strategies also run behind the network profile ('' for none)")
    p.add_argument("--latency-ms", type=_latency_ms, default=index.DEFAULT_LATENCY_MS,
                   help=f"network profile: ms added to each response (default {index.DEFAULT_LATENCY_MS:g})")
    p.add_argument("--bandwidth", type=_bandwidth, default=index.DEFAULT_BANDWIDTH,
                   help="network profile: bytes/s shared by all connections, e.g. 12.5M (the default)")
    p.add_argument(
        "--requirements",
        choices=("realistic", "small"),
        default="realistic",
        help="the set each job installs: about 50 wheels with numpy and pandas, or a small pure-Python set",
    )
    p.add_argument("--scale-packages", type=int, default=500, help="100-file packages in the scale cache")
    p.add_argument("--no-scale", action="store_true", help="skip the scale set (P4, P5, G2, G4)")
    p.add_argument("--big-scale", action=argparse.BooleanOptionalAction,
                   help="also the scale point ten times larger, for G4 (default: on, off with --quick)")
    p.add_argument("--no-fixed-cost", action="store_true", help="skip the CPU of ci-cache's fixed cost (G1)")
    p.add_argument("--cpu-samples", type=int, default=20, help="samples per fixed-cost probe (default 20)")
    p.add_argument("--disk-probe", action=argparse.BooleanOptionalAction,
                   help="one more untimed job per variant that measures its disk use (default: on, off with --quick)")
    p.add_argument(
        "--cic-via",
        choices=("run", "steps"),
        default="run",
        help="drive ci-cache jobs by one `ci-cache run` (default) or `setup` + `finish` steps",
    )
    p.add_argument("--cold-jobs", type=int, default=1, help="jobs of the wave that warms each variant")
    p.add_argument("--simple-max-age", type=int, default=0, help="index page max-age; 0 revalidates")
    p.add_argument("--out", type=Path, help="where the JSON, markdown and chart go (default bench/results)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--work", type=Path, help="scratch dir for caches and venvs (default: on the disk)")
    where.add_argument("--tmpfs", action="store_true", help=f"scratch on tmpfs ({TMPFS}) instead of the disk")
    p.add_argument("--keep", action="store_true", help="keep the work dir (caches, archives) afterwards")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--report", type=Path, metavar="JSON", help="only re-render the table, markdown and chart of a run")
    args = p.parse_args(argv)
    args.n = args.n or ([4] if args.quick else [1, 2, 4, 8])
    args.repeats = args.repeats or 3
    args.strategies = args.strategies or list(QUICK_STRATEGIES if args.quick else strategies.REGISTRY)
    if args.copy_for is None:
        args.copy_for = QUICK_COPY if args.quick else FULL_COPY
    if args.net_for is None:
        args.net_for = QUICK_NET if args.quick else FULL_NET
    # --quick leaves out what no target reads, to stay near 5 minutes on a 2-core machine.
    if args.big_scale is None:
        args.big_scale = not args.quick
    if args.disk_probe is None:
        args.disk_probe = not args.quick
    args.copy_floor = not args.quick  # `cp -a` of the caches: a reference figure, slow on a disk
    unknown = sorted(set(args.strategies) - set(strategies.REGISTRY))
    if unknown:
        p.error(f"unknown strategies {unknown}; known: {', '.join(strategies.REGISTRY)}")
    if args.cpu_samples < 1 or args.scale_packages < 10:
        p.error("--cpu-samples wants at least 1 and --scale-packages at least 10")
    args.network = NetworkProfile(latency=args.latency_ms / 1000, bandwidth=args.bandwidth)
    return args


def variants(args: argparse.Namespace, notes: list[str]) -> list[Variant]:
    """Each strategy in uv's default link mode, then its copy-mode and network variants where asked."""
    out: list[Variant] = []
    for name in args.strategies:
        if not strategies.available(name):
            notes.append(f"{name} skipped: its tools are not installed here")
            continue
        modes = strategies.REGISTRY[name].link_modes
        out += [Variant(name, m) for m in modes if m == "default" or name in args.copy_for]
        if name in args.net_for:
            out.append(Variant(name, "default", NET))
    return out


def networks(planned: Sequence[Variant]) -> list[str]:
    return [n for n in (LOOPBACK, NET) if any(v.network == n for v in planned)]


def work_parent(args: argparse.Namespace, home: Path) -> Path:
    """The disk by default, where agents keep their caches; tmpfs only when asked and big enough.

    Raises ValueError when tmpfs is asked for but not there."""
    if args.work is not None:
        return Path(args.work)
    if args.tmpfs:
        if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) and shutil.disk_usage(TMPFS).free >= TMPFS_MIN_FREE:
            return TMPFS / "ci-cache-bench"
        raise ValueError(f"--tmpfs needs {TMPFS} writable with {TMPFS_MIN_FREE >> 30} GiB free; use --work DIR")
    return home / "bench-work"


def filesystem_of(path: Path) -> str:
    """The type and options of the mount holding `path`, from /proc/mounts (Linux), else unknown."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    path.mkdir(parents=True, exist_ok=True)
    target = os.path.realpath(path)
    best, best_len = "unknown", -1
    for line in mounts:
        fields = line.split()
        if len(fields) >= 4:
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) > best_len:
                best, best_len = f"{fields[2]} ({fields[3]})", len(point)
    return best
