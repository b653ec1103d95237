"""`ci-cache doctor`: check an agent and explain what is wrong and what to do."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from ci_cache import fsops, osapi, rootlayout, status, verify
from ci_cache.config import Config
from ci_cache.errors import CiCacheError
from ci_cache.store import Store
from ci_cache.tools.uv import DEEPEST_SUFFIX, UvTool, find_uv

LOW_DISK_BYTES = 2 * 1024**3


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    advice: str = ""
    warning: bool = False  # no problem (the exit code stays 0), but the advice is worth reading


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, advice: str = "", *, warning: bool = False) -> None:
        self.checks.append(Check(name, ok, detail, advice, warning))


def diagnose(store: Store, env: Mapping[str, str], *, windows: bool, config: Config | None = None) -> Diagnosis:
    d = Diagnosis()
    config = config or Config()
    try:
        store.ensure()
        d.add("root", True, f"{store.root} is writable")
    except CiCacheError as exc:
        d.add("root", False, str(exc), "point `root:` (CI_CACHE_ROOT) at a writable folder")
        return d
    _layout(d, store)
    free = fsops.disk_free(store.root)
    d.add("disk", free >= LOW_DISK_BYTES, f"{free / 2**30:.1f} GiB free under {store.root}",
          "free some space, or bound the caches: `ci-cache prune --max-size 20GB`")
    longest = len(str(store.jobs_dir / "j0123456789a" / "uv")) + DEEPEST_SUFFIX
    long_ok = osapi.long_paths_enabled()
    if windows:
        fits = longest < osapi.MAX_PATH or bool(long_ok)
        d.add("paths", fits, f"deepest cache path about {longest} characters; long paths "
              f"{'enabled' if long_ok else 'not enabled'} in Windows",
              "set HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem LongPathsEnabled=1, or a shorter root "
              "such as C:\\cc")
    else:
        d.add("paths", True, f"deepest cache path about {longest} characters (no MAX_PATH limit here)")
    uv = find_uv(env)
    if uv:
        proc = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False)
        d.add("uv", proc.returncode == 0, f"{uv}: {proc.stdout.strip() or proc.stderr.strip()}")
    else:
        d.add("uv", False, "uv not found on PATH", "install uv (pip install uv), or drop uv from `tools:`")
    bad_locks = []
    for lock_file in sorted([*store.shared_dir.glob("*.lock"), *store.jobs_dir.glob("*.lease")]):
        try:
            with open(lock_file, "a+b"):
                pass
        except OSError as exc:
            bad_locks.append(f"{lock_file}: {exc.strerror}")
    d.add("locks", not bad_locks, "; ".join(bad_locks) or "all lock files can be opened",
          "delete the listed lock files while no job runs")
    state = status.collect(store)
    stale, finished = state["stale_jobs"], state["finished_jobs"]
    held = f"; {len(finished)} finished job dir(s) held open at finish, which gc deletes" if finished else ""
    d.add("jobs", not stale, f"{len(state['live_jobs'])} live, {len(stale)} stale job dir(s){held}",
          "run `ci-cache gc` to reclaim the stale ones")
    uv_cache = store.shared_cache("uv")
    if uv_cache.is_dir():
        report = verify.check(UvTool(), uv_cache)
        d.add("verify", report.ok, f"shared uv cache: {report.checked.get('pointers', 0)} pointers, "
              f"{len(report.errors)} error(s), {sum(f.kind == 'garbage' for f in report.findings)} leftover "
              "temp dir(s)",
              "run `ci-cache verify --fix`")
    _link_mode(d, config, env, windows=windows)
    av = ("exclude the root from real-time scanning, e.g. PowerShell as admin: "
          f"Add-MpPreference -ExclusionPath '{store.root}' (and the same for your EDR tool)")
    d.add("antivirus", True, "scanners lock fresh files for seconds; ci-cache retries, but an exclusion is faster"
          if windows else "no Windows antivirus here", av if windows else "")
    return d


def _layout(d: Diagnosis, store: Store) -> None:
    """The root's layout version (`rootlayout`): one this ci-cache uses, migrates, or refuses."""
    try:
        found = rootlayout.read(store)
    except CiCacheError as exc:
        d.add("layout", False, exc.message, exc.hint or "")
        return
    if found is None:
        d.add("layout", True, f"no layout recorded yet: the next job records layout {rootlayout.LAYOUT}")
    elif found.layout > rootlayout.LAYOUT:
        refused = rootlayout.newer_layout_error(store)
        d.add("layout", False, refused.message, refused.hint or "")
    else:
        later = "" if found.layout == rootlayout.LAYOUT else f"; the next job migrates it to {rootlayout.LAYOUT}"
        d.add("layout", True, f"layout {found.layout}, written by {found.written_by}{later}")


def _link_mode(d: Diagnosis, config: Config, env: Mapping[str, str], *, windows: bool) -> None:
    """How uv links isolated jobs' venvs to their caches, where that matters: on Windows, hardlinks share
    one file object, so a lock on one is a lock on all, and seeded archives are links to the shared files."""
    mode = config.resolved_mode(windows)
    if mode != "isolated":
        return
    configured = config.resolved_uv_link_mode(windows)
    link = configured or env.get("UV_LINK_MODE") or ("hardlink" if windows else "")
    source = "uv_link_mode" if configured else ("UV_LINK_MODE" if env.get("UV_LINK_MODE") else "uv's default")
    if link == "symlink":
        d.add("link mode", False, f"UV_LINK_MODE=symlink ({source}) with isolated jobs: their venvs would link "
              "into the job's cache, which finish deletes",
              "set `uv_link_mode: copy` (or auto) in ci-cache.yml")
    elif windows and link == "hardlink":
        d.add("link mode", True, f"UV_LINK_MODE=hardlink ({source}) with isolated jobs on Windows: seeded archives "
              "are links to the shared cache's files, and venvs linked from them share those file objects again, "
              "so one job's loaded module blocks another job's reinstall (8 of 16 jobs failed even after "
              "retries under a simulated scanner)",
              "set `uv_link_mode: auto` (copy on Windows), or `clone` on a ReFS Dev Drive", warning=True)


def render(d: Diagnosis) -> str:
    lines = []
    for c in d.checks:
        lines.append(f"[{'PROBLEM' if not c.ok else 'WARNING' if c.warning else 'ok'}] {c.name}: {c.detail}")
        if c.advice and (not c.ok or c.warning or c.name == "antivirus"):
            lines.append(f"      -> {c.advice}")
    warnings = sum(c.ok and c.warning for c in d.checks)
    noted = f", {warnings} warning(s)" if warnings else ""
    lines.append(("all good" if not warnings else f"no problems{noted}") if d.ok
                 else f"{sum(not c.ok for c in d.checks)} problem(s) found{noted}")
    return "\n".join(lines)

