"""The benchmark's result records and their JSON form (bench/results/<date>-<host>.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Variant:
    """A strategy run under one uv link mode (`default` leaves UV_LINK_MODE alone)."""

    strategy: str
    link_mode: str = "default"

    @property
    def key(self) -> str:
        return self.strategy if self.link_mode == "default" else f"{self.strategy}+{self.link_mode}"

    @classmethod
    def parse(cls, key: str) -> Variant:
        strategy, _, mode = key.partition("+")
        return cls(strategy, mode or "default")


@dataclass
class JobResult:
    """One job: its wall time and the steps it timed (restore, install, save, ci-cache's phases...)."""

    job: str
    wall: float
    ok: bool = True
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step
    info: dict[str, float] = field(default_factory=dict)  # counts a step reported (files seeded, merged)
    error: str = ""


@dataclass
class Wave:
    """N jobs started together; the makespan is the wall time until the last one ended."""

    variant: str
    n: int
    warm: bool
    repeat: int
    makespan: float
    jobs: list[JobResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs)


@dataclass
class ScaleResult:
    """Seed and merge costs against a big synthetic cache (targets P4a, P4b, P5)."""

    cache_files: int = 0
    packages: int = 0
    cp_al: list[float] = field(default_factory=list)
    cp_a: list[float] = field(default_factory=list)
    seed_full: list[float] = field(default_factory=list)
    seed_keyed: list[float] = field(default_factory=list)
    keyed_fraction: float = 0.0  # share of the cache's packages the keyed job needs
    merge: list[float] = field(default_factory=list)
    merge_new_files: int = 0  # files each measured merge added to the shared cache


@dataclass
class RunResult:
    """Everything one `python -m bench` run measured, plus what it ran on."""

    meta: dict[str, Any] = field(default_factory=dict)
    waves: list[Wave] = field(default_factory=list)
    disk: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> name -> bytes
    floor: dict[str, list[float]] = field(default_factory=dict)  # "cp -al" / "cp -a" of the warm cache
    scale: ScaleResult | None = None
    notes: list[str] = field(default_factory=list)


def to_json(run: RunResult) -> dict[str, Any]:
    data = asdict(run)
    data["schema"] = SCHEMA_VERSION
    return data


def _job(d: dict[str, Any]) -> JobResult:
    return JobResult(
        job=str(d["job"]),
        wall=float(d["wall"]),
        ok=bool(d.get("ok", True)),
        phases={str(k): float(v) for k, v in d.get("phases", {}).items()},
        info={str(k): float(v) for k, v in d.get("info", {}).items()},
        error=str(d.get("error", "")),
    )


def _wave(d: dict[str, Any]) -> Wave:
    return Wave(
        variant=str(d["variant"]),
        n=int(d["n"]),
        warm=bool(d["warm"]),
        repeat=int(d["repeat"]),
        makespan=float(d["makespan"]),
        jobs=[_job(j) for j in d.get("jobs", [])],
    )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values or []]


def _scale(d: dict[str, Any]) -> ScaleResult:
    return ScaleResult(
        cache_files=int(d.get("cache_files", 0)),
        packages=int(d.get("packages", 0)),
        cp_al=_floats(d.get("cp_al")),
        cp_a=_floats(d.get("cp_a")),
        seed_full=_floats(d.get("seed_full")),
        seed_keyed=_floats(d.get("seed_keyed")),
        keyed_fraction=float(d.get("keyed_fraction", 0.0)),
        merge=_floats(d.get("merge")),
        merge_new_files=int(d.get("merge_new_files", 0)),
    )


def from_json(data: dict[str, Any]) -> RunResult:
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"unsupported bench result schema {data.get('schema')!r} (want {SCHEMA_VERSION})")
    scale = data.get("scale")
    return RunResult(
        meta=dict(data.get("meta", {})),
        waves=[_wave(w) for w in data.get("waves", [])],
        disk={str(k): {str(n): int(b) for n, b in v.items()} for k, v in data.get("disk", {}).items()},
        floor={str(k): _floats(v) for k, v in data.get("floor", {}).items()},
        scale=_scale(scale) if scale is not None else None,
        notes=[str(n) for n in data.get("notes", [])],
    )


def save(run: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json(run), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def load(path: Path) -> RunResult:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a bench result object")
    return from_json(data)
