"""The performance targets, computed from a run and printed one per line.

`P1`-`P5` are the first targets of the bench; `G1`-`G5` are the goals of issue 14 ("a warm isolated job
as fast as a plain shared cache"). Targets are reported, never asserted: a benchmark on a shared
2-core machine is evidence, not a gate. Some official bounds have a stricter internal bar, reported
under their own id (`P1.bar`, ...). A target the run chose not to measure (`RunResult.skipped`, or a
variant it needs left out of the run's plan) says SKIP rather than FAIL; one it tried and could not
measure says FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import stats
from bench.model import RunResult

# Goal 1: ci-cache's fixed CPU at most this many times a bare interpreter's, and setup+finish twice that.
G1_RUN_BOUND = 3.0
G1_STEPS_BOUND = 2 * G1_RUN_BOUND


@dataclass(frozen=True)
class Target:
    id: str
    measured: float | None
    bound: float
    at_most: bool  # True: measured <= bound passes; False: measured >= bound passes
    what: str
    strict: bool = False  # "faster than": the bound itself does not pass
    skipped: str = ""  # why the run did not measure it

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        if self.strict:
            return self.measured < self.bound if self.at_most else self.measured > self.bound
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    @property
    def verdict(self) -> str:
        if self.passed:
            return "PASS"
        return "SKIP" if self.measured is None and self.skipped else "FAIL"

    @property
    def condition(self) -> str:
        """`<= 1.25`, `>= 6`, `< 1`."""
        op = ("<" if self.at_most else ">") + ("" if self.strict else "=")
        return f"{op} {self.bound:g}"

    def line(self) -> str:
        measured = "n/a" if self.measured is None else f"{self.measured:.3f}"
        return f"target: {self.id} measured={measured} bound={self.bound:g} {self.verdict}"


def compute(run: RunResult, n: int = stats.TARGET_N) -> list[Target]:
    def ms(variant: str) -> float | None:
        return stats.makespan(run, variant, n)

    planned = run.meta.get("variants")

    def target(tid: str, measured: float | None, bound: float, at_most: bool, what: str, *, strict: bool = False,
               needs: tuple[str, ...] = ()) -> Target:
        skipped = run.skipped.get(tid, "")
        left_out = [v for v in needs if isinstance(planned, list) and v not in planned]
        if left_out and not skipped:
            skipped = f"this run left out {', '.join(left_out)}"
        return Target(tid, measured, bound, at_most, what, strict, skipped)

    cic, cic_copy, shared = ms(stats.CIC), ms(stats.CIC_COPY), ms(stats.SHARED)
    p1_copy = stats.ratio(cic_copy, ms(stats.SHARED_COPY))
    p1_default = stats.ratio(cic, shared)
    p2 = stats.ratio(ms(stats.EMPTY), cic)
    p3 = stats.ratio(ms(stats.TAR), cic)
    scale, big = run.scale, run.big_scale
    p4a = p4b = g2 = None
    if scale is not None:
        p4a = stats.ratio(stats.median(scale.seed_full), stats.median(scale.cp_al))
        p4b = stats.ratio(stats.median(scale.seed_keyed), stats.median(scale.seed_full))
        g2 = stats.ratio(stats.median(scale.seed_detected), stats.median(scale.seed_full))
    p5 = stats.merge_per_1000(run)
    cic_net = ms(stats.net(stats.CIC))
    copy = (stats.CIC_COPY, stats.SHARED_COPY)
    default = (stats.CIC, stats.SHARED)
    empty, tar = (stats.EMPTY, stats.CIC), (stats.TAR, stats.CIC)
    empty_net, tar_net = tuple(map(stats.net, empty)), tuple(map(stats.net, tar))
    warm = f"N={n}, warm, makespan"
    python = "a bare `python -c 'import sys'`, CPU user+sys, median"
    return [
        target("P1", p1_copy, 1.15, True, f"ci-cache isolated / plain shared, UV_LINK_MODE=copy ({warm})",
               needs=copy),
        target("P1.bar", p1_copy, 1.10, True, "the same, internal bar", needs=copy),
        target("P1.default", p1_default, 1.5, True, f"the same in uv's default link mode, internal bar ({warm})",
               needs=default),
        target("P2", p2, 3.0, False, f"per-job empty cache / ci-cache isolated ({warm})", needs=empty),
        target("P2.bar", p2, 6.0, False, "the same, internal bar", needs=empty),
        target("P3", p3, 3.0, False, f"tar.zst restore+save / ci-cache isolated ({warm})", needs=tar),
        target("P3.bar", p3, 8.0, False, "the same, internal bar", needs=tar),
        target("P4a", p4a, 1.0, True, "full seed of the scale cache / cp -al of the same tree"),
        target("P4b", p4b, 0.25, True, "seed with key_files naming 10% of the packages / full seed"),
        target("P5", p5, 1.0, True, "seconds to merge 1,000 new files into the scale cache"),
        target("G1.run", stats.ratio(stats.cpu(run, "run"), stats.cpu(run, "python")), G1_RUN_BOUND, True,
               f"`ci-cache run --mode isolated -- true` on an empty root / {python}"),
        target("G1.steps", stats.ratio(stats.cpu(run, "steps"), stats.cpu(run, "python")), G1_STEPS_BOUND, True,
               f"`ci-cache setup` + `finish` (lease holder included) on an empty root / {python}"),
        target("G2", g2, 0.15, True,
               "seed of a job needing 10% of the scale set, found from its workspace's requirements.txt "
               "(no key_files) / full seed"),
        target("G3.default", p1_default, 1.25, True, f"ci-cache isolated / plain shared, default link mode ({warm})",
               needs=default),
        target("G3.copy", p1_copy, 1.10, True, f"ci-cache isolated / plain shared, UV_LINK_MODE=copy ({warm})",
               needs=copy),
        target("G3.cpal", stats.ratio(cic, ms(stats.CP_AL)), 1.0, True,
               f"ci-cache isolated / the `cp -al` one-liner: faster than it ({warm})", strict=True,
               needs=(stats.CIC, stats.CP_AL)),
        target("G4", stats.ratio(stats.overhead(big), stats.overhead(scale)), 1.5, True,
               "per-job overhead (all but the uv command) of the 10% job: shared cache 10x larger / scale set"),
        target("G5.empty", stats.ratio(ms(stats.net(stats.EMPTY)), cic_net), 6.0, False,
               f"network profile: per-job empty cache / ci-cache isolated ({warm})", needs=empty_net),
        target("G5.tar", stats.ratio(ms(stats.net(stats.TAR)), cic_net), 8.0, False,
               f"network profile: tar.zst restore+save / ci-cache isolated ({warm})", needs=tar_net),
    ]


def lines(targets: list[Target]) -> list[str]:
    return [t.line() for t in targets]
