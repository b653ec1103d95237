"""The ci-cache strategies, driven through the real CLI exactly as the CI wrappers drive it.

A job is `ci-cache setup --format json` (allocate and seed), the install with the env it printed, then
`ci-cache finish --json` (merge and release). ci-cache's own phase timings are read from those JSON
objects defensively: whatever numbers they hold under `phases` are kept, nothing is required.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.jobs import Job, JobError, Setup, run
from ci_cache.store import Store

_PHASES = "phases"
_COUNTS = ("seeded", "merged")


def flatten_numbers(obj: Any, prefix: str) -> dict[str, float]:
    """Numeric leaves of a JSON value as dotted names: {"a": {"b": 1}} -> {"<prefix>.a.b": 1.0}."""
    out: dict[str, float] = {}
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        out[prefix] = float(obj)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten_numbers(value, f"{prefix}.{key}"))
    return out


def read_summary(data: Any) -> tuple[dict[str, float], dict[str, float]]:
    """(phase seconds, counts) out of a setup/finish/run JSON summary, or empty when it has none."""
    if not isinstance(data, dict):
        return {}, {}
    phases = flatten_numbers(data.get(_PHASES), "cic")
    counts: dict[str, float] = {}
    for key in _COUNTS:
        counts.update(flatten_numbers(data.get(key), key))
    return phases, counts


def parse_json_output(text: str) -> Any:
    """The JSON object a command printed on stdout (the last line that parses, if it printed more)."""
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def job_env(base: Mapping[str, str], setup_json: Mapping[str, Any]) -> dict[str, str]:
    """The env a job's commands run with after `setup`: its `env` over ours, `path_prepend` on PATH."""
    env = {**base, **{str(k): str(v) for k, v in dict(setup_json.get("env") or {}).items()}}
    prepend = [str(p) for p in setup_json.get("path_prepend") or []]
    if prepend:
        env["PATH"] = os.pathsep.join([*prepend, env.get("PATH", "")])
    return env


def config_env(seed: str, link_mode: str) -> dict[str, str]:
    """ci-cache's settings for a variant: `unset` leaves UV_LINK_MODE to uv, as the reference does."""
    return {"CI_CACHE_SEED": seed, "CI_CACHE_UV_LINK_MODE": "unset" if link_mode == "default" else link_mode}


class CiCache:
    """ci-cache in one mode and seeding method, driven by `run` (one process) or `setup`/`finish` steps."""

    link_modes: tuple[str, ...] = ("default", "copy")

    def __init__(self, name: str, mode: str, seed: str, via: str = "run") -> None:
        self.name = name
        self.mode = mode
        self.seed = seed
        self.via = via
        if mode == "shared":
            self.models = "ci-cache `--mode shared`: the shared cache itself, under ci-cache's lock"
        else:
            self.models = f"ci-cache `--mode isolated`, seeding by {seed}, merging back at the end"

    def with_via(self, via: str) -> CiCache:
        return CiCache(self.name, self.mode, self.seed, via)

    def probe(self) -> CiCache:
        # The disk probe looks at the job's cache between install and merge: only steps allow that.
        return self.with_via("steps")

    def root(self, state: Path) -> Path:
        return state / "root"

    def prepare(self, state: Path, setup: Setup) -> None:
        self.root(state).mkdir(parents=True)

    def _cli(self, job: Job, setup: Setup, *args: str) -> list[str]:
        root = str(self.root(job.state))
        return [str(setup.ci_cache), *args, "--job", job.id, "--mode", self.mode, "--root", root]

    def _summary_file(self, job: Job) -> Path:
        return job.dir / "ci-cache-summary.json"

    def command_prefix(self, job: Job, setup: Setup) -> list[str]:
        if self.via != "run":
            return []
        # --retry: the wrapped command is a shell running uv, which run would not recognise as uv.
        summary = str(self._summary_file(job))
        return [*self._cli(job, setup, "run", "--retry", "--summary-json", summary), "--"]

    def begin(self, job: Job, setup: Setup) -> dict[str, str]:
        env = {**setup.env, **config_env(self.seed, job.link_mode)}
        if self.via == "run":
            job.env = env
            return env
        with job.timed("setup"):
            out = run(self._cli(job, setup, "setup", "--format", "json"), env, cwd=job.dir)
        data = parse_json_output(out)
        if not isinstance(data, dict):
            raise JobError(f"ci-cache setup printed no JSON object: {out[-300:]!r}")
        phases, counts = read_summary(data)
        job.phases.update(phases)
        job.info.update(counts)
        caches = data.get("caches") or {}
        if self.mode == "isolated" and isinstance(caches, dict) and caches.get("uv"):
            job.cache = Path(str(caches["uv"]))
        job.env = job_env(env, data)
        return job.env

    def end(self, job: Job, setup: Setup, ok: bool) -> None:
        if self.via == "run":
            try:
                data = json.loads(self._summary_file(job).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
        else:
            env = job.env or {**setup.env, **config_env(self.seed, job.link_mode)}
            status = "success" if ok else "failure"
            with job.timed("finish"):
                out = run(self._cli(job, setup, "finish", "--json", "--status", status), env, cwd=job.dir)
            data = parse_json_output(out)
        # The final summary repeats setup's phases (seed) with finish's: it is the complete record.
        phases, counts = read_summary(data)
        job.phases.update(phases)
        job.info.update(counts)

    def shared(self, state: Path) -> list[Path]:
        # Only the shared caches: the root's jobs/ dir holds the job's own cache while it runs.
        return [Store(self.root(state)).shared_dir]
