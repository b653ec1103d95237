"""The cache strategies compared: a Protocol and a registry, one small class each.

A job is `begin` (restore, seed: returns the env for uv), the shared venv + install, then `end`
(save, merge). Strategies time their own steps into `job.phases`.
"""

from __future__ import annotations

import os
import shutil
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol, TypeVar

from bench import cic
from bench.jobs import Job, Setup, run, with_bench_path

_S = TypeVar("_S")

# actions/cache compresses with zstd on all cores (zstdmt); `-I` makes GNU tar do the same both ways.
_ZSTD = "zstd -T0"


class Strategy(Protocol):
    name: str
    models: str  # what this strategy stands for, for the docs and the summary
    link_modes: tuple[str, ...]  # the uv link modes worth measuring it under

    def prepare(self, state: Path, setup: Setup) -> None:
        """Make a fresh, empty state dir for this strategy."""

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        """Everything before the install; returns the job's environment."""

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        """Everything after the install."""

    def shared(self, state: Path) -> list[Path]:
        """Where the state shared between jobs lives, for disk accounting."""

    def command_prefix(self, job: Job, setup: Setup) -> list[str]:
        """A command the job's venv + install run under (`ci-cache run ... --`), or none."""

    def probe(self) -> Strategy:
        """The same strategy in a form that can pause between install and `end` (for the disk probe)."""


class _Plain:
    """Strategies whose job is begin, the bare install, end."""

    def command_prefix(self, job: Job, setup: Setup) -> list[str]:
        return []

    def probe(self: _S) -> _S:
        return self


class PlainShared(_Plain):
    name = "shared"
    models = "one uv cache shared by all jobs, uv's own locking (uv's default; the speed reference)"
    link_modes: tuple[str, ...] = ("default", "copy")

    def prepare(self, state: Path, setup: Setup) -> None:
        (state / "cache").mkdir(parents=True)

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        return {**setup.env, "UV_CACHE_DIR": str(job.state / "cache")}

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        pass

    def shared(self, state: Path) -> list[Path]:
        return [state / "cache"]


class EmptyPerJob(_Plain):
    name = "empty"
    models = "a fresh UV_CACHE_DIR per job, thrown away after (what users do by hand today)"
    link_modes: tuple[str, ...] = ("default",)

    def prepare(self, state: Path, setup: Setup) -> None:
        state.mkdir(parents=True)

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        job.cache = job.dir / "cache"
        job.cache.mkdir(parents=True)
        return {**setup.env, "UV_CACHE_DIR": str(job.cache)}

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        pass  # deleting the cache is left untimed: it only makes this baseline look better

    def shared(self, state: Path) -> list[Path]:
        return []


class _ArchivePerJob(_Plain, ABC):
    """Restore an archive of the cache before the job and save a new one after it, as CI caches do."""

    suffix = ""
    link_modes: tuple[str, ...] = ("default",)

    def prepare(self, state: Path, setup: Setup) -> None:
        state.mkdir(parents=True)

    def archive(self, state: Path) -> Path:
        return state / f"cache{self.suffix}"

    @abstractmethod
    def pack(self, src: Path, dest: Path, setup: Setup) -> None: ...

    @abstractmethod
    def unpack(self, archive: Path, dest: Path, setup: Setup) -> None: ...

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        job.cache = job.dir / "cache"
        job.cache.mkdir(parents=True)
        archive = self.archive(job.state)
        with job.timed("restore"):
            if archive.exists():
                self.unpack(archive, job.cache, setup)
        return {**setup.env, "UV_CACHE_DIR": str(job.cache)}

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        if not ok or job.cache is None:
            return
        archive = self.archive(job.state)
        tmp = archive.with_name(f"{archive.name}.{job.id}.tmp")
        with job.timed("save"):
            self.pack(job.cache, tmp, setup)
            os.replace(tmp, archive)  # last writer wins, as with a cache key every job saves

    def shared(self, state: Path) -> list[Path]:
        return [self.archive(state)]


class TarZstd(_ArchivePerJob):
    name = "tar-zstd"
    models = "per job: tar+zstd restore before, save after (actions/cache, Job Cacher)"
    suffix = ".tar.zst"

    def pack(self, src: Path, dest: Path, setup: Setup) -> None:
        run(["tar", "-I", _ZSTD, "-cf", dest, "-C", src, "."], setup.env)

    def unpack(self, archive: Path, dest: Path, setup: Setup) -> None:
        run(["tar", "-I", _ZSTD, "-xf", archive, "-C", dest], setup.env)


class Zip(_ArchivePerJob):
    name = "zip"
    models = "per job: zip restore before, save after (GitLab `cache:`)"
    suffix = ".zip"

    def pack(self, src: Path, dest: Path, setup: Setup) -> None:
        run([sys.executable, "-m", "bench.archive", "zip", src, dest], with_bench_path(setup.env))

    def unpack(self, archive: Path, dest: Path, setup: Setup) -> None:
        run([sys.executable, "-m", "bench.archive", "unzip", archive, dest], with_bench_path(setup.env))


class CpAlOneLiner(_Plain):
    name = "cp-al"
    models = "per job: `cp -al` of the warm cache, no merge back (the unsafe shell one-liner; the bar)"
    link_modes: tuple[str, ...] = ("default", "copy")

    def prepare(self, state: Path, setup: Setup) -> None:
        state.mkdir(parents=True)

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        warm = job.state / "cache"
        if not warm.exists():
            # The first (cold) job fills the warm cache itself: the one-liner never merges back.
            return {**setup.env, "UV_CACHE_DIR": str(warm)}
        job.cache = job.dir / "cache"
        with job.timed("seed"):
            run(["cp", "-al", warm, job.cache], setup.env)
        return {**setup.env, "UV_CACHE_DIR": str(job.cache)}

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        pass

    def shared(self, state: Path) -> list[Path]:
        return [state / "cache"]


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        PlainShared(),
        EmptyPerJob(),
        TarZstd(),
        Zip(),
        CpAlOneLiner(),
        cic.CiCache("cic-iso-link", "isolated", "link"),
        cic.CiCache("cic-iso-copy", "isolated", "copy"),
        cic.CiCache("cic-shared", "shared", "link"),
    )
}


def available(name: str) -> bool:
    """cp -al needs GNU/BSD cp; tar needs zstd: both are checked before a run instead of failing each job."""
    if name == "cp-al":
        return shutil.which("cp") is not None and os.name != "nt"
    if name == "tar-zstd":
        return shutil.which("tar") is not None and shutil.which("zstd") is not None
    return True
