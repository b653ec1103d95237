"""The floor: what `cp -al` (link every file) and `cp -a` (copy every file) of a warm cache cost."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.jobs import rmtree

FLAGS = {"cp -al": "-al", "cp -a": "-a"}


def available() -> bool:
    return os.name != "nt"


def time_cp(src: Path, scratch: Path, flag: str, repeats: int) -> list[float]:
    """Seconds per `cp FLAG src dest` into a fresh dest, `repeats` times; removal is untimed."""
    times: list[float] = []
    scratch.mkdir(parents=True, exist_ok=True)
    for i in range(repeats):
        dest = scratch / f"floor{i}"
        rmtree(dest)
        t0 = time.perf_counter()
        subprocess.run(["cp", flag, os.fspath(src), os.fspath(dest)], check=True)
        times.append(time.perf_counter() - t0)
        rmtree(dest)
    return times


def flags(copy: bool) -> dict[str, str]:
    """Both copies, or only `cp -al` (copying every file is slow on a disk, and no target reads it)."""
    return FLAGS if copy else {"cp -al": FLAGS["cp -al"]}


def measure(src: Path, scratch: Path, repeats: int, flags: dict[str, str] | None = None) -> dict[str, list[float]]:
    """Seconds per copy for each of `flags` (default: both `cp -al` and `cp -a`)."""
    return {name: time_cp(src, scratch, flag, repeats) for name, flag in (flags or FLAGS).items()}
