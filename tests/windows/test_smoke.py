"""The lab works: uv.exe, the embeddable python.exe with ci-cache, and the env/path plumbing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path, PureWindowsPath

import pytest

from .winlab import REPO, Lab, run_windows, to_windows, wine_env

pytestmark = pytest.mark.windows


def test_uv_exe_runs(wine_lab: Lab) -> None:
    proc = run_windows([wine_lab.uv_exe, "--version"], the_lab=wine_lab)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"uv \d+\.\d+\.\d+ \(.*x86_64-pc-windows-msvc\)", proc.stdout.strip()), proc.stdout


def test_python_is_windows(wine_lab: Lab) -> None:
    proc = run_windows([wine_lab.python_exe, "-c", "import os, sys; print(sys.platform, os.name, os.sep)"],
                       the_lab=wine_lab)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["win32", "nt", "\\"]


def test_python_imports_ci_cache_and_dependencies(wine_lab: Lab) -> None:
    code = ("import json, sys, yaml, obstore, distlib, ci_cache, ci_cache.cli; "
            "print(json.dumps({'ci_cache': ci_cache.__file__, 'yaml_c': yaml.__with_libyaml__, "
            "'pydantic': 'pydantic' in sys.modules}))")
    proc = run_windows([wine_lab.python_exe, "-c", code], the_lab=wine_lab)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    # The copy in the lab's site-packages, refreshed from this working tree for the session.
    site_packages = PureWindowsPath(to_windows(wine_lab.python_exe.parent / "Lib" / "site-packages"))
    assert PureWindowsPath(info["ci_cache"]).parent.parent == site_packages
    assert info["yaml_c"] is True  # the win_amd64 wheel's _yaml extension loaded
    assert info["pydantic"] is False  # the config's import cost: see ci_cache/schema.py
    copied = sorted(p.name for p in (wine_lab.python_exe.parent / "Lib/site-packages/ci_cache").glob("*.py"))
    assert copied == sorted(p.name for p in (REPO / "ci_cache").glob("*.py"))


def test_ci_cache_cli_runs_under_windows_python(wine_lab: Lab) -> None:
    proc = run_windows([wine_lab.python_exe, "-m", "ci_cache", "--help"], the_lab=wine_lab)
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout


def test_env_wine_overrides_reaches_the_program(wine_lab: Lab, tmp_path: Path) -> None:
    """TEMP/TMP from the caller win over Wine's registry values (through winenv.exe), exit codes pass."""
    temp = tmp_path / "job temp"
    temp.mkdir()
    code = ("import os, sys, tempfile; print(os.environ['TEMP']); print(os.environ['TMP']); "
            "print(tempfile.gettempdir()); print(os.environ['UV_LINK_MODE']); sys.exit(7)")
    proc = run_windows([wine_lab.python_exe, "-c", code], env={"TEMP": temp, "TMP": temp, "UV_LINK_MODE": "copy"},
                       the_lab=wine_lab)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.splitlines() == [to_windows(temp)] * 3 + ["copy"]


def test_without_winenv_wine_overrides_temp(wine_lab: Lab, tmp_path: Path) -> None:
    """Why winenv.exe exists: TEMP set on the Unix side does not reach a program started by wine."""
    env = wine_env(wine_lab)
    env["TEMP"] = str(tmp_path)
    proc = subprocess.run([str(wine_lab.wine), to_windows(wine_lab.python_exe), "-c",
                           "import os; print(os.environ['TEMP'])"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() not in (str(tmp_path), to_windows(tmp_path))


def test_to_windows_matches_winepath(wine_lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "a dir" / "file.txt"
    proc = subprocess.run(["winepath", "-w", str(path)], env=wine_env(wine_lab), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert to_windows(path) == proc.stdout.strip()
    assert to_windows(path).startswith("Z:\\")
