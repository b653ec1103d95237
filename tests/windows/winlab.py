"""The Wine lab for the Windows tier: where scripts/setup-wine.sh put things, and how to run them.

`lab()` returns the lab or skips the test; `run_windows` / `start_windows` run a Windows program under
Wine with what it needs there: the lab's WINEPREFIX, quiet Wine, std streams on pipes (the embeddable
python.exe cannot start otherwise), Unix paths turned into Windows ones, and environment variables that
Wine would override (TEMP, TMP, PATH, USERPROFILE, ...) delivered through the lab's winenv.exe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

SETUP_SCRIPT = "scripts/setup-wine.sh"
REPO = Path(__file__).resolve().parents[2]
BUILD_LAB = REPO / "scripts" / "wine" / "build_lab.py"
# Read once at import: the project's autouse fixture removes CI_* variables and fakes HOME per test.
_DEV_HOME = Path(os.environ.get("CI_CACHE_DEV_HOME") or Path.home() / ".cache" / "ci-cache-dev")
LAB_ROOT = Path(os.environ.get("CI_CACHE_WINE_LAB") or _DEV_HOME / "wine")
# CI_CACHE_WINE_SOAK=1 (or a number of rounds) makes the scenario tests repeat their racy phase.
_SOAK = os.environ.get("CI_CACHE_WINE_SOAK", "").strip()
SOAK_ROUNDS = (int(_SOAK) if _SOAK.isdigit() and int(_SOAK) > 1 else 10) if _SOAK not in ("", "0") else 0

# What Wine rebuilds from the prefix's registry for a process started from Unix, whatever the Unix
# environment says (checked with Wine 8.0). A Windows parent's environment block is kept, though.
WINE_OVERRIDDEN = frozenset({
    "TEMP", "TMP", "PATH", "PATHEXT", "USERPROFILE", "LOCALAPPDATA", "APPDATA", "PROGRAMDATA", "HOME",
    "USERNAME", "SYSTEMROOT", "WINDIR", "COMSPEC", "ALLUSERSPROFILE", "PUBLIC", "SYSTEMDRIVE",
})
WINENV_PREFIX = "WINLAB_SET_"
# Unix variables that would confuse a Windows program or make Wine look for a display. TMPDIR and XDG_*
# are not set on a Windows agent, and Windows Python's tempfile would prefer TMPDIR over TEMP.
_DROPPED = ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP",
            "TMPDIR")
_DROPPED_PREFIXES = ("XDG_",)

EnvValue = str | os.PathLike[str]
Arg = str | os.PathLike[str]


@dataclass(frozen=True)
class Lab:
    """Paths (Unix side) of one prepared lab, as recorded in its lab.json."""

    root: Path
    wine: Path
    wineserver: Path
    prefix: Path
    uv_exe: Path
    python_exe: Path
    winenv_exe: Path
    index_dir: Path
    uv_version: str
    python_version: str
    wine_version: str

    @classmethod
    def load(cls, root: Path) -> Lab:
        info = json.loads((root / "lab.json").read_text(encoding="utf-8"))
        return cls(
            root=root, wine=Path(info["wine"]), wineserver=Path(info["wineserver"]),
            prefix=Path(info["prefix"]), uv_exe=Path(info["uv_exe"]), python_exe=Path(info["python_exe"]),
            winenv_exe=Path(info["winenv_exe"]), index_dir=Path(info["index_dir"]),
            uv_version=str(info["uv_version"]), python_version=str(info["python_version"]),
            wine_version=str(info["wine_version"]),
        )

    def missing(self) -> list[Path]:
        wanted = (self.wine, self.wineserver, self.prefix / "system.reg", self.uv_exe, self.python_exe,
                  self.winenv_exe, self.index_dir / "simple" / "index.html")
        return [p for p in wanted if not p.exists()]


def find_lab(root: Path = LAB_ROOT) -> tuple[Lab | None, str]:
    """The lab under root, or None and why not."""
    how = f"run {SETUP_SCRIPT} to build it (Wine, uv.exe, embeddable CPython, wheel index)"
    if not (root / "lab.json").is_file():
        return None, f"Wine lab not set up ({root / 'lab.json'} missing): {how}"
    try:
        found = Lab.load(root)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"Wine lab at {root} is unreadable ({exc}): {how}"
    missing = found.missing()
    if missing:
        return None, f"Wine lab at {root} is incomplete ({', '.join(map(str, missing))} missing): {how}"
    return found, ""


def lab() -> Lab:
    """The prepared lab; skips the calling test, saying which script builds it, when there is none."""
    found, reason = find_lab()
    if found is None:
        pytest.skip(reason)
    return found


def to_windows(path: os.PathLike[str] | str) -> str:
    """`winepath -w` without a process: every prefix maps Z: to / (setup-wine.sh checks that)."""
    parts = PurePosixPath(os.path.abspath(path)).parts[1:]
    return str(PureWindowsPath("Z:\\", *parts))


def from_windows(path: str) -> Path:
    """The Unix path of a `Z:\\...` path (what ci-cache under Wine writes into records and JSON)."""
    win = PureWindowsPath(path)
    if win.drive.upper() != "Z:":
        raise ValueError(f"{path} is not on Z:, which maps /")
    return Path("/", *win.parts[1:])


def _arg(value: Arg) -> str:
    return to_windows(value) if isinstance(value, os.PathLike) else value


def wine_env(the_lab: Lab, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Unix environment for `wine`: base (default os.environ) plus the lab's Wine settings."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in _DROPPED and not k.startswith(_DROPPED_PREFIXES)}
    env.update(
        WINEPREFIX=str(the_lab.prefix),
        WINEDEBUG="-all",
        # No Mono/Gecko install prompts, no desktop menu entries written below $HOME.
        WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d",
        # The embeddable CPython's console stdio does not work under Wine; legacy stdio does.
        PYTHONLEGACYWINDOWSSTDIO="1",
    )
    return env


def windows_command(
    argv: Sequence[Arg], env: Mapping[str, EnvValue] | None = None, *, the_lab: Lab
) -> tuple[list[str], dict[str, str]]:
    """The Unix argv and env that run argv (Path items become Windows paths) with env on the Windows side."""
    unix_env = wine_env(the_lab)
    wrapped = False
    for name, value in (env or {}).items():
        text = _arg(value)
        if name.upper() in WINE_OVERRIDDEN:
            # Wine would replace these: winenv.exe sets them in the Windows process instead.
            unix_env[WINENV_PREFIX + name.upper()] = text
            wrapped = True
        else:
            unix_env[name] = text
    args = [_arg(a) for a in argv]
    if wrapped:
        args = [to_windows(the_lab.winenv_exe), *args]
    return [str(the_lab.wine), *args], unix_env


def run_windows(
    argv: Sequence[Arg],
    env: Mapping[str, EnvValue] | None = None,
    cwd: os.PathLike[str] | str | None = None,
    timeout: float = 300,
    *,
    the_lab: Lab | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a Windows program to completion under Wine; output captured (pipes), decoded as UTF-8.

    env holds the variables the Windows program should see on top of the usual ones; os.PathLike values
    are converted to Windows paths. A timeout kills the program and raises subprocess.TimeoutExpired.
    """
    cmd, unix_env = windows_command(argv, env, the_lab=the_lab or lab())
    return subprocess.run(cmd, env=unix_env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=timeout, check=False)


def start_windows(
    argv: Sequence[Arg],
    env: Mapping[str, EnvValue] | None = None,
    cwd: os.PathLike[str] | str | None = None,
    *,
    stdin: int = subprocess.DEVNULL,
    the_lab: Lab | None = None,
) -> subprocess.Popen[str]:
    """Start a Windows program under Wine without waiting; stdout and stderr are pipes (see run_windows).

    stdin=subprocess.PIPE gives the caller a way to hold the program until it closes that pipe.
    """
    cmd, unix_env = windows_command(argv, env, the_lab=the_lab or lab())
    return subprocess.Popen(cmd, env=unix_env, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, encoding="utf-8", errors="replace")


@contextmanager
def wine_session(the_lab: Lab, timeout: float = 300) -> Iterator[None]:
    """Keep the prefix's wineserver (and Wine's services) up while the body runs.

    The server exits 3 s after its last Windows process, and a cold start costs seconds. Worse, the
    first Windows process of a server starts Wine's services (services.exe, winedevice.exe, ...), which
    inherit its std handles and live as long as the server: a caller reading that process's output to
    EOF then waits for the server to exit. So: first start the server with a process whose std streams
    are /dev/null, then keep a Windows process of ours waiting on its stdin until the body is done.
    """
    env = wine_env(the_lab)
    subprocess.run([str(the_lab.wine), to_windows(the_lab.winenv_exe)], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    cmd, env = windows_command([the_lab.python_exe, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
                               the_lab=the_lab)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # up (or EOF if it died: then tests just pay cold starts)
        yield
    finally:
        assert proc.stdin is not None
        try:
            proc.stdin.close()
            proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def sync_ci_cache(the_lab: Lab, repo: Path = REPO) -> None:
    """Copy this working tree's ci_cache into the lab's Windows Python (cheap; the tree changes)."""
    cmd = [sys.executable, str(BUILD_LAB), "--lab", str(the_lab.root), "--repo", str(repo), "--sync-only"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
