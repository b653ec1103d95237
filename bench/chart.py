"""Optional PNG chart of warm makespan against N, one line per variant (needs the `bench` extra)."""

from __future__ import annotations

import importlib
from pathlib import Path

from bench import stats
from bench.model import RunResult, Variant

SKIPPED = "chart skipped"


def series(run: RunResult) -> dict[str, list[tuple[int, float]]]:
    """variant -> [(N, median warm makespan)] for the Ns it has."""
    out: dict[str, list[tuple[int, float]]] = {}
    for variant in stats.variants(run):
        points = [(n, stats.makespan(run, variant, n)) for n in stats.ns(run)]
        kept = [(n, m) for n, m in points if m is not None]
        if kept:
            out[variant] = kept
    return out


def draw(run: RunResult, path: Path) -> str | None:
    """Write the chart; returns a note instead when matplotlib is not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return f"{SKIPPED}: matplotlib is not installed (pip install -e '.[bench]')"
    matplotlib.use("Agg")  # no display needed
    plt = importlib.import_module("matplotlib.pyplot")
    fig, ax = plt.subplots(figsize=(9, 5))
    # One colour per strategy; its UV_LINK_MODE=copy variant is the dashed line of the same colour.
    data = series(run)
    names = list(dict.fromkeys(Variant.parse(v).strategy for v in data))
    colours = plt.get_cmap("tab10")
    for variant, points in data.items():
        parsed = Variant.parse(variant)
        ax.plot(
            [n for n, _ in points],
            [m for _, m in points],
            marker="o",
            label=variant,
            color=colours(names.index(parsed.strategy) % 10),
            linestyle="-" if parsed.link_mode == "default" else "--",
        )
    ax.set_xlabel("concurrent jobs (N)")
    ax.set_ylabel("median warm makespan (s)")
    ax.set_yscale("log")
    ax.set_xticks(stats.ns(run))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"uv install makespan by cache strategy ({run.meta.get('host', '')})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
