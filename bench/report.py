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
        *(["disk MB job/shared"] if run.disk else []),  # no column when the disk probe was off
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
                *([f"{_mb(disk.get('job_private'))}/{_mb(disk.get('shared'))}"] if run.disk else []),
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
        share = f"{scale.keyed_fraction:.0%} of the packages"
        rows += [
            [f"cp -al of the scale cache ({scale.cache_files} files)", _fmt(stats.median(scale.cp_al), 3)],
            *([[f"cp -a of the scale cache ({scale.cache_files} files)", _fmt(stats.median(scale.cp_a), 3)]]
              if scale.cp_a else []),  # left out by --quick
            ["ci-cache full seed of the scale cache", _fmt(stats.median(scale.seed_full), 3)],
            [f"ci-cache seed with key_files ({share})", _fmt(stats.median(scale.seed_keyed), 3)],
            [
                f"ci-cache seed, requirements.txt in the workspace only ({share}; scope "
                f"{scale.seed_detected_scope or '?'})",
                _fmt(stats.median(scale.seed_detected), 3),
            ],
            [f"ci-cache merge of {scale.merge_new_files} new files", _fmt(stats.median(scale.merge), 3)],
        ]
    for label, point in (("scale cache", scale), ("10x cache", run.big_scale)):
        if point is not None and point.job_overhead:
            rows.append([
                f"10% job through `ci-cache run`, {label} ({point.cache_files} files): wall / uv command / overhead",
                " / ".join(_fmt(stats.median(v), 3) for v in (point.job_wall, point.job_command, point.job_overhead)),
            ])
    return rows


def _cpu_rows(run: RunResult) -> list[list[str]]:
    fixed = run.fixed_cost
    if fixed is None:
        return []
    python = stats.cpu(run, "python")
    probes = {
        "python": "bare `python -c 'import sys'`",
        "run": "`ci-cache run --mode isolated -- true`",
        "steps": "`ci-cache setup` + `ci-cache finish`",
    }
    rows = []
    for probe, what in probes.items():
        samples = fixed.samples.get(probe, [])
        ms = [_fmt(None if v is None else v * 1000, 1) for v in
              (stats.cpu(run, probe), stats.cpu_part(run, probe, "user"), stats.cpu_part(run, probe, "sys"))]
        ratio = stats.ratio(stats.cpu(run, probe), python)
        detached = max((s.processes for s in samples), default=0)
        rows.append([what, *ms, "-" if ratio is None else f"{ratio:.2f}x", str(len(samples)), str(detached)])
    return rows


_CPU_HEADER = ["fixed cost (empty root)", "CPU ms", "user ms", "sys ms", "/ python", "samples", "detached procs"]


def _target_rows(run: RunResult) -> list[list[str]]:
    return [
        [t.id, t.what, "n/a" if t.measured is None else f"{t.measured:.3f}", t.condition, t.verdict]
        for t in targets.compute(run)
    ]


def _skipped_lines(run: RunResult) -> list[str]:
    return [f"{t.id} skipped: {t.skipped}" for t in targets.compute(run) if t.verdict == "SKIP"]


def text(run: RunResult) -> str:
    """What the run prints on stdout: the table, the floor, the ratios and the target lines."""
    parts = [
        "Median makespan in seconds (wall time of N concurrent jobs; warm unless marked cold; "
        f"@net: index behind {run.meta.get('network', 'the network profile')})",
        makespan_table(run, markdown=False),
        "",
        text_table(["floor and scale", "median s"], _floor_rows(run)),
        "",
    ]
    if run.fixed_cost is not None:
        parts += [text_table(_CPU_HEADER, _cpu_rows(run)), ""]
    parts += [
        text_table(["headline ratio", "value"], _headline_rows(run)),
        "",
        *targets.lines(targets.compute(run)),
        *_skipped_lines(run),
    ]
    return "\n".join(parts)


def _meta_value(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def markdown(run: RunResult, descriptions: Mapping[str, str]) -> str:
    meta = run.meta
    meta_rows = [[str(k), _meta_value(v)] for k, v in sorted(meta.items())]
    strategy_rows = [[name, what] for name, what in descriptions.items()]
    out = [
        f"# Benchmark run {meta.get('date', '')} on {meta.get('host', '')}",
        "",
        md_table(["key", "value"], meta_rows),
        "",
        "## Median makespan (s), warm unless marked cold",
        "",
        f"`@net` variants reach the index behind the network profile: {meta.get('network', 'n/a')}.",
        "",
        makespan_table(run, markdown=True),
        "",
        "## Floor, seed, merge and per-job overhead",
        "",
        md_table(["measurement", "median s"], _floor_rows(run)),
        "",
    ]
    if run.fixed_cost is not None:
        out += ["## Fixed cost (goal 1)", "", md_table(_CPU_HEADER, _cpu_rows(run)), "",
                f"Counted as: {run.fixed_cost.method}. Interpreter: `{run.fixed_cost.interpreter}`.", ""]
    out += [
        "## Headline ratios",
        "",
        md_table(["ratio", "value"], _headline_rows(run)),
        "",
        "## Targets",
        "",
        md_table(["id", "what", "measured", "bound", "verdict"], _target_rows(run)),
        *(["", *(f"- {line}" for line in _skipped_lines(run))] if _skipped_lines(run) else []),
        "",
        "## Strategies",
        "",
        md_table(["strategy", "models"], strategy_rows),
    ]
    if run.notes:
        out += ["", "## Notes", "", *(f"- {n}" for n in run.notes)]
    return "\n".join(out) + "\n"
