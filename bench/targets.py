"""The issue's performance targets (P1-P5), computed from a run and printed one per line.

Targets are reported, never asserted: a benchmark on a shared 2-core machine is evidence, not a gate.
Each official bound has a stricter internal bar, reported under its own id (`P1.bar`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import stats
from bench.model import RunResult


@dataclass(frozen=True)
class Target:
    id: str
    measured: float | None
    bound: float
    at_most: bool  # True: measured <= bound passes; False: measured >= bound passes
    what: str

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def line(self) -> str:
        measured = "n/a" if self.measured is None else f"{self.measured:.3f}"
        verdict = "PASS" if self.passed else "FAIL"
        return f"target: {self.id} measured={measured} bound={self.bound:g} {verdict}"


def compute(run: RunResult, n: int = stats.TARGET_N) -> list[Target]:
    def ms(variant: str) -> float | None:
        return stats.makespan(run, variant, n)

    p1_copy = stats.ratio(ms(stats.CIC_COPY), ms(stats.SHARED_COPY))
    p1_default = stats.ratio(ms(stats.CIC), ms(stats.SHARED))
    p2 = stats.ratio(ms(stats.EMPTY), ms(stats.CIC))
    p3 = stats.ratio(ms(stats.TAR), ms(stats.CIC))
    scale = run.scale
    p4a = p4b = None
    if scale is not None:
        p4a = stats.ratio(stats.median(scale.seed_full), stats.median(scale.cp_al))
        p4b = stats.ratio(stats.median(scale.seed_keyed), stats.median(scale.seed_full))
    p5 = stats.merge_per_1000(run)
    warm = f"N={n}, warm, makespan"
    return [
        Target("P1", p1_copy, 1.15, True, f"ci-cache isolated / plain shared, UV_LINK_MODE=copy ({warm})"),
        Target("P1.bar", p1_copy, 1.10, True, "the same, internal bar"),
        Target("P1.default", p1_default, 1.5, True, f"the same in uv's default link mode, internal bar ({warm})"),
        Target("P2", p2, 3.0, False, f"per-job empty cache / ci-cache isolated ({warm})"),
        Target("P2.bar", p2, 6.0, False, "the same, internal bar"),
        Target("P3", p3, 3.0, False, f"tar.zst restore+save / ci-cache isolated ({warm})"),
        Target("P3.bar", p3, 8.0, False, "the same, internal bar"),
        Target("P4a", p4a, 1.0, True, "full seed of the scale cache / cp -al of the same tree"),
        Target("P4b", p4b, 0.25, True, "seed with key_files naming 10% of the packages / full seed"),
        Target("P5", p5, 1.0, True, "seconds to merge 1,000 new files into the scale cache"),
    ]


def lines(targets: list[Target]) -> list[str]:
    return [t.line() for t in targets]
