"""Goal 1: the CPU ci-cache costs a job when there is nothing to seed, against Python's own start-up.

Three probes, sampled in turn (so a burst of load elsewhere hits all three alike), each through the
subreaper wrapper of `bench.rusage` so that detached processes count:

- `python`: `python -c "import sys"` of the interpreter the ci-cache CLI runs on (the floor);
- `run`: `ci-cache run --mode isolated -- true`;
- `steps`: `ci-cache setup --mode isolated` then `ci-cache finish`, with setup's lease holder.

The root is empty: one untimed warm-up of each probe initialises it (and compiles bytecode), and its
shared caches stay empty, because `true` installs nothing. So the seed has nothing to link and costs
only the syscalls that find that out: the issue's "plus the syscalls of the seed" is zero here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from bench import rusage
from bench.model import CpuSample, FixedCost

PROBES = ("python", "run", "steps")
SAMPLES = 20


def interpreter_of(script: Path) -> Path:
    """The Python a console script runs on, from its `#!` line; the running one if there is none."""
    try:
        with open(script, "rb") as f:
            first = f.readline(4096).decode(errors="replace").strip()
    except OSError:
        return Path(sys.executable)
    if first.startswith("#!"):
        words = first[2:].split()
        if words and os.path.basename(words[0]).startswith("python") and Path(words[0]).is_file():
            return Path(words[0])
    return Path(sys.executable)


def commands(probe: str, cli: Path, python: Path, root: Path, job: str) -> list[list[str]]:
    """The command lines one sample of `probe` runs."""
    scope = ["--job", job, "--root", str(root)]
    if probe == "python":
        return [[str(python), "-c", "import sys"]]
    if probe == "run":
        return [[str(cli), "run", *scope, "--mode", "isolated", "--", "true"]]
    if probe == "steps":
        return [
            [str(cli), "setup", "--format", "json", *scope, "--mode", "isolated"],
            [str(cli), "finish", "--json", *scope],
        ]
    raise ValueError(f"unknown fixed-cost probe {probe!r}; known: {', '.join(PROBES)}")


Measure = Callable[[list[list[str]], Mapping[str, str], Path, Path], CpuSample]


def measure(
    cli: Path,
    env: Mapping[str, str],
    work: Path,
    *,
    samples: int = SAMPLES,
    sample: Measure = rusage.measure,
    progress: Callable[[str], None] = lambda _msg: None,
) -> FixedCost:
    """`samples` interleaved samples of each probe, after one untimed warm-up of each."""
    python = interpreter_of(cli)
    root = work / "fixed-cost-root"
    cwd = work / "fixed-cost-job"
    cwd.mkdir(parents=True, exist_ok=True)
    result = FixedCost(interpreter=str(python), method=rusage.METHOD, samples={p: [] for p in PROBES})
    for i in range(samples + 1):
        for probe in PROBES:
            got = sample(commands(probe, cli, python, root, f"f{probe[0]}{i}"), env, cwd, work)
            if i > 0:  # sample 0 warms up the root and the bytecode caches
                result.samples[probe].append(got)
        if i and i % 5 == 0:
            progress(f"fixed cost: {i}/{samples} samples")
    return result
