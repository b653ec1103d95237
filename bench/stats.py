"""Medians over repeats, makespans per variant and N, CPU and scale figures, and the headline ratios."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from bench.model import NET, RunResult, ScaleResult, Variant, Wave

# The variants the headline ratios and targets compare.
SHARED = "shared"
SHARED_COPY = "shared+copy"
EMPTY = "empty"
TAR = "tar-zstd"
ZIP = "zip"
CP_AL = "cp-al"
CIC = "cic-iso-link"
CIC_COPY = "cic-iso-link+copy"
TARGET_N = 4


def net(variant: str) -> str:
    """The same variant behind the run's network profile: `empty` -> `empty@net`."""
    parsed = Variant.parse(variant)
    return Variant(parsed.strategy, parsed.link_mode, NET).key


def median(values: Iterable[float]) -> float | None:
    data = list(values)
    return statistics.median(data) if data else None


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def waves(run: RunResult, variant: str, n: int, *, warm: bool = True) -> list[Wave]:
    """The waves of one variant and N whose jobs all succeeded: a failed job's time means nothing."""
    return [w for w in run.waves if w.variant == variant and w.n == n and w.warm == warm and w.ok]


def makespan(run: RunResult, variant: str, n: int, *, warm: bool = True) -> float | None:
    return median(w.makespan for w in waves(run, variant, n, warm=warm))


def phase(run: RunResult, variant: str, n: int, name: str, *, warm: bool = True) -> float | None:
    """Median of one timed step over every job of the matching waves (jobs that lack it are skipped)."""
    return median(j.phases[name] for w in waves(run, variant, n, warm=warm) for j in w.jobs if name in j.phases)


def phase_names(run: RunResult, variant: str) -> list[str]:
    names: dict[str, None] = {}
    for w in run.waves:
        if w.variant == variant:
            for j in w.jobs:
                names.update(dict.fromkeys(j.phases))
    return list(names)


def variants(run: RunResult) -> list[str]:
    """Variants in the order they were first run."""
    return list(dict.fromkeys(w.variant for w in run.waves))


def ns(run: RunResult) -> list[int]:
    """The Ns of the warm waves (a cold wave's N is a column of its own)."""
    return sorted({w.n for w in run.waves if w.warm})


def cpu(run: RunResult, probe: str) -> float | None:
    """Median user+sys CPU seconds of a fixed-cost probe (`python`, `run`, `steps`)."""
    if run.fixed_cost is None:
        return None
    return median(s.total for s in run.fixed_cost.samples.get(probe, []))


def cpu_part(run: RunResult, probe: str, part: str) -> float | None:
    """Median user or sys CPU seconds of a probe."""
    if run.fixed_cost is None:
        return None
    return median(getattr(s, part) for s in run.fixed_cost.samples.get(probe, []))


def overhead(scale: ScaleResult | None) -> float | None:
    """Median per-job overhead of the 10% job (its wall time minus the uv command's)."""
    return None if scale is None else median(scale.job_overhead)


def merge_per_1000(run: RunResult) -> float | None:
    scale = run.scale
    if scale is None or scale.merge_new_files <= 0:
        return None
    m = median(scale.merge)
    return None if m is None else m * 1000.0 / scale.merge_new_files


@dataclass(frozen=True)
class Headline:
    name: str
    value: float | None
    unit: str = "x"


def headlines(run: RunResult, n: int = TARGET_N) -> list[Headline]:
    """The ratios the issue asks for, at N concurrent jobs, all warm."""

    def ms(variant: str) -> float | None:
        return makespan(run, variant, n)

    scale = run.scale
    big = run.big_scale
    return [
        Headline("ci-cache run -- true / bare python, CPU", ratio(cpu(run, "run"), cpu(run, "python"))),
        Headline("ci-cache setup+finish / bare python, CPU", ratio(cpu(run, "steps"), cpu(run, "python"))),
        Headline(f"ci-cache isolated / plain shared, default link mode (N={n})", ratio(ms(CIC), ms(SHARED))),
        Headline(
            f"ci-cache isolated / plain shared, UV_LINK_MODE=copy (N={n})",
            ratio(ms(CIC_COPY), ms(SHARED_COPY)),
        ),
        Headline(f"per-job empty cache / ci-cache isolated (N={n})", ratio(ms(EMPTY), ms(CIC))),
        Headline(f"tar.zst restore+save / ci-cache isolated (N={n})", ratio(ms(TAR), ms(CIC))),
        Headline(f"zip restore+save / ci-cache isolated (N={n})", ratio(ms(ZIP), ms(CIC))),
        Headline(f"ci-cache isolated / cp -al one-liner (N={n})", ratio(ms(CIC), ms(CP_AL))),
        Headline(f"network: per-job empty cache / ci-cache isolated (N={n})", ratio(ms(net(EMPTY)), ms(net(CIC)))),
        Headline(f"network: tar.zst restore+save / ci-cache isolated (N={n})", ratio(ms(net(TAR)), ms(net(CIC)))),
        Headline(f"network: ci-cache isolated / plain shared (N={n})", ratio(ms(net(CIC)), ms(net(SHARED)))),
        Headline(
            "full seed / cp -al of the same cache (scale set)",
            ratio(median(scale.seed_full), median(scale.cp_al)) if scale else None,
        ),
        Headline(
            "keyed seed / full seed (scale set)",
            ratio(median(scale.seed_keyed), median(scale.seed_full)) if scale else None,
        ),
        Headline(
            "seed of the 10% job found in its workspace / full seed (scale set)",
            ratio(median(scale.seed_detected), median(scale.seed_full)) if scale else None,
        ),
        Headline("merge time per 1,000 new files (scale set)", merge_per_1000(run), "s"),
        Headline("per-job overhead of the 10% job, 10x cache / scale set", ratio(overhead(big), overhead(scale))),
    ]
