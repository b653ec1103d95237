"""The benchmark's result records and their JSON form (bench/results/<date>-<host>.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
# Version 1 lacked the network dimension, the fixed-cost figures and the extra scale fields: it still
# loads, with those empty.
READABLE_SCHEMAS = (1, SCHEMA_VERSION)
LOOPBACK = "loopback"
NET = "net"  # the run's network profile (`meta["network"]` says which one)


@dataclass(frozen=True)
class Variant:
    """A strategy run under one uv link mode (`default` leaves UV_LINK_MODE alone) and one network.

    Keys read `strategy[+link_mode][@net]`: `shared`, `shared+copy`, `empty@net`.
    """

    strategy: str
    link_mode: str = "default"
    network: str = LOOPBACK

    @property
    def key(self) -> str:
        key = self.strategy if self.link_mode == "default" else f"{self.strategy}+{self.link_mode}"
        return key if self.network == LOOPBACK else f"{key}@{self.network}"

    @classmethod
    def parse(cls, key: str) -> Variant:
        rest, _, network = key.partition("@")
        strategy, _, mode = rest.partition("+")
        return cls(strategy, mode or "default", network or LOOPBACK)


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
    """Seed, merge and per-job costs against a big synthetic cache (targets P4a, P4b, P5, G2, G4)."""

    cache_files: int = 0
    packages: int = 0
    cp_al: list[float] = field(default_factory=list)
    cp_a: list[float] = field(default_factory=list)
    seed_full: list[float] = field(default_factory=list)
    seed_keyed: list[float] = field(default_factory=list)
    keyed_fraction: float = 0.0  # share of the cache's packages the keyed job needs
    merge: list[float] = field(default_factory=list)
    merge_new_files: int = 0  # files each measured merge added to the shared cache
    # The same 10% job with no key_files, only its requirements file in its workspace (goal 2).
    seed_detected: list[float] = field(default_factory=list)
    seed_detected_scope: str = ""  # what ci-cache reported as the seed's scope ("full", ...)
    # That job run whole through `ci-cache run` (goal 4): its wall time, the uv command's share, the rest.
    job_wall: list[float] = field(default_factory=list)
    job_command: list[float] = field(default_factory=list)
    job_overhead: list[float] = field(default_factory=list)
    build_s: float = 0.0  # seconds to build the index and fill the shared cache (not a measurement)


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds of a command and every process it started, detached ones included."""

    user: float
    sys: float
    processes: int = 0  # processes reaped after their parent had gone (the lease holder, background deletes)

    @property
    def total(self) -> float:
        return self.user + self.sys


@dataclass
class FixedCost:
    """Goal 1: CPU of ci-cache's fixed cost against the interpreter's own start-up, interleaved samples.

    `samples` maps a probe (`python`, `run`, `steps`) to its samples; `method` says how the CPU of
    detached processes was counted.
    """

    interpreter: str = ""
    method: str = ""
    samples: dict[str, list[CpuSample]] = field(default_factory=dict)


@dataclass
class RunResult:
    """Everything one `python -m bench` run measured, plus what it ran on."""

    meta: dict[str, Any] = field(default_factory=dict)
    waves: list[Wave] = field(default_factory=list)
    disk: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> name -> bytes
    floor: dict[str, list[float]] = field(default_factory=dict)  # "cp -al" / "cp -a" of the warm cache
    scale: ScaleResult | None = None
    big_scale: ScaleResult | None = None  # the same job against a shared cache ten times larger (goal 4)
    fixed_cost: FixedCost | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # target id -> why it was not measured
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


def _scale(d: dict[str, Any] | None) -> ScaleResult | None:
    if d is None:
        return None
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
        seed_detected=_floats(d.get("seed_detected")),
        seed_detected_scope=str(d.get("seed_detected_scope", "")),
        job_wall=_floats(d.get("job_wall")),
        job_command=_floats(d.get("job_command")),
        job_overhead=_floats(d.get("job_overhead")),
        build_s=float(d.get("build_s", 0.0)),
    )


def _fixed_cost(d: dict[str, Any] | None) -> FixedCost | None:
    if d is None:
        return None
    samples = {
        str(name): [CpuSample(float(s["user"]), float(s["sys"]), int(s.get("processes", 0))) for s in values]
        for name, values in dict(d.get("samples") or {}).items()
    }
    return FixedCost(interpreter=str(d.get("interpreter", "")), method=str(d.get("method", "")), samples=samples)


def from_json(data: dict[str, Any]) -> RunResult:
    if data.get("schema") not in READABLE_SCHEMAS:
        raise ValueError(f"unsupported bench result schema {data.get('schema')!r} (want one of {READABLE_SCHEMAS})")
    return RunResult(
        meta=dict(data.get("meta", {})),
        waves=[_wave(w) for w in data.get("waves", [])],
        disk={str(k): {str(n): int(b) for n, b in v.items()} for k, v in data.get("disk", {}).items()},
        floor={str(k): _floats(v) for k, v in data.get("floor", {}).items()},
        scale=_scale(data.get("scale")),
        big_scale=_scale(data.get("big_scale")),
        fixed_cost=_fixed_cost(data.get("fixed_cost")),
        skipped={str(k): str(v) for k, v in dict(data.get("skipped") or {}).items()},
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
