"""The human side of a run: the stdout table and the markdown summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench import stats, targets
from bench.model import RunResult

# Steps worth showing per variant, in this order (ci-cache's own phases are prefixed `cic.`).
_STEPS = (
    "restore",
    "seed",
    "setup",
    "venv",
    "install",
    "wrapped",
    "save",
    "finish",
    "cic.seed",
    "cic.command",
    "cic.merge",
    "cic.lock_wait",
    "cic.cleanup",
)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.1f}"


def step_summary(run: RunResult, variant: str, n: int) -> str:
    parts = []
    for name in _STEPS:
        value = stats.phase(run, variant, n, name)
        if value is not None:
            parts.append(f"{name} {value:.2f}")
    return ", ".join(parts)


def _rows(run: RunResult) -> tuple[list[str], list[list[str]]]:
    ns = stats.ns(run)
    n_steps = stats.TARGET_N if stats.TARGET_N in ns else (ns[-1] if ns else stats.TARGET_N)
    cold_ns = sorted({w.n for w in run.waves if not w.warm})
    header = [
        "variant",
        *(f"cold N={n}" for n in cold_ns),
        *(f"N={n}" for n in ns),
        f"median steps at N={n_steps} (s)",
        "disk MB job/shared",
    ]
    rows = []
    for variant in stats.variants(run):
        disk = run.disk.get(variant, {})
        rows.append(
            [
                variant,
                *(_fmt(stats.makespan(run, variant, n, warm=False)) for n in cold_ns),
                *(_fmt(stats.makespan(run, variant, n)) for n in ns),
                step_summary(run, variant, n_steps),
                f"{_mb(disk.get('job_private'))}/{_mb(disk.get('shared'))}",
            ]
        )
    return header, rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def makespan_table(run: RunResult, *, markdown: bool) -> str:
    header, rows = _rows(run)
    return md_table(header, rows) if markdown else text_table(header, rows)


def _headline_rows(run: RunResult) -> list[list[str]]:
    return [[h.name, "-" if h.value is None else f"{h.value:.3f}{h.unit}"] for h in stats.headlines(run)]


def _floor_rows(run: RunResult) -> list[list[str]]:
    rows = [[f"{name} of the warm realistic cache", _fmt(stats.median(v), 3)] for name, v in run.floor.items()]
    scale = run.scale
    if scale is not None:
        rows += [
            [f"cp -al of the scale cache ({scale.cache_files} files)", _fmt(stats.median(scale.cp_al), 3)],
            [f"cp -a of the scale cache ({scale.cache_files} files)", _fmt(stats.median(scale.cp_a), 3)],
            ["ci-cache full seed of the scale cache", _fmt(stats.median(scale.seed_full), 3)],
            [
                f"ci-cache seed with key_files ({scale.keyed_fraction:.0%} of the packages)",
                _fmt(stats.median(scale.seed_keyed), 3),
            ],
            [f"ci-cache merge of {scale.merge_new_files} new files", _fmt(stats.median(scale.merge), 3)],
        ]
    return rows


def text(run: RunResult) -> str:
    """What the run prints on stdout: the table, the floor, the ratios and the target lines."""
    parts = [
        "Median makespan in seconds (wall time of N concurrent jobs; warm unless marked cold)",
        makespan_table(run, markdown=False),
        "",
        text_table(["floor and scale", "median s"], _floor_rows(run)),
        "",
        text_table(["headline ratio", "value"], _headline_rows(run)),
        "",
        *targets.lines(targets.compute(run)),
    ]
    return "\n".join(parts)


def markdown(run: RunResult, descriptions: Mapping[str, str]) -> str:
    meta = run.meta
    tgt = targets.compute(run)
    target_rows = [
        [
            t.id,
            t.what,
            "n/a" if t.measured is None else f"{t.measured:.3f}",
            ("<= " if t.at_most else ">= ") + f"{t.bound:g}",
            "PASS" if t.passed else "FAIL",
        ]
        for t in tgt
    ]
    meta_rows = [
        [str(k), ", ".join(map(str, v)) if isinstance(v, list) else str(v)]
        for k, v in sorted(meta.items())
        if not isinstance(v, dict)
    ]
    strategy_rows = [[name, what] for name, what in descriptions.items()]
    out = [
        f"# Benchmark run {meta.get('date', '')} on {meta.get('host', '')}",
        "",
        md_table(["key", "value"], meta_rows),
        "",
        "## Median makespan (s), warm unless marked cold",
        "",
        makespan_table(run, markdown=True),
        "",
        "## Floor, seed and merge",
        "",
        md_table(["measurement", "median s"], _floor_rows(run)),
        "",
        "## Headline ratios",
        "",
        md_table(["ratio", "value"], _headline_rows(run)),
        "",
        "## Targets",
        "",
        md_table(["id", "what", "measured", "bound", "verdict"], target_rows),
        "",
        "## Strategies",
        "",
        md_table(["strategy", "models"], strategy_rows),
    ]
    if run.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in run.notes)]
    return "\n".join(out) + "\n"
