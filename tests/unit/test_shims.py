"""ci_cache.shims: the shared-mode shims, and what a shim runs (the real command under its tool's lock)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ci_cache import cli, config, osapi, shims
from ci_cache.errors import LockTimeout
from ci_cache.store import Store
from ci_cache.tools.base import CacheTool
from ci_cache.tools.generic import GenericTool, TempTool


@pytest.mark.skipif(sys.platform == "win32", reason="the POSIX shim script")
def test_install_writes_one_executable_shim_per_command(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    shims.install(bin_dir, ["uv", "uvx"], windows=False)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["uv", "uvx"]
    script = (bin_dir / "uv").read_text()
    assert script.startswith("#!/bin/sh\n")
    assert f"-m ci_cache {shims.SHIM_SUBCOMMAND} uv -- \"$@\"" in script and sys.executable in script
    assert os.access(bin_dir / "uv", os.X_OK)


def test_the_windows_launchers_entry_point_is_the_clis_shim_entry() -> None:
    module, _, name = shims.LAUNCHER_ENTRY.partition(":")
    assert getattr(importlib.import_module(module), name) is cli.shim_entry


def test_path_without_takes_out_the_shim_dir_however_it_is_written(tmp_path: Path) -> None:
    bin_dir = tmp_path / "job" / "bin"
    path = os.pathsep.join([str(bin_dir) + os.sep, "/usr/bin", "", str(tmp_path / "job" / "." / "bin"), "/bin"])
    assert shims.path_without(bin_dir, path) == os.pathsep.join(["/usr/bin", "/bin"])


def test_writer_locks_are_those_of_the_tools_with_a_shared_cache(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tools: list[CacheTool] = [GenericTool("pip", {}), TempTool()]
    assert shims.writer_locks(store, tools) == [(store.write_lock("pip"), "shared pip cache")]


def fake_tool(bin_dir: Path, name: str, code: int) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\nexit {code}\n")
    (bin_dir / name).chmod(0o755)


@pytest.mark.spawns
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX fake commands")
def test_run_tool_runs_the_real_command_under_its_tools_lock(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    fake_tool(job_dir / "bin", "uv", 99)  # the shim itself: must not be found again
    fake_tool(tmp_path / "real", "uv", 4)
    env = {"PATH": os.pathsep.join([str(job_dir / "bin"), str(tmp_path / "real")]), "CI_CACHE_JOB_DIR": str(job_dir)}
    cfg = config.Config(lock_timeout=0.3)
    root = tmp_path / "root"
    assert shims.run_tool(["uv", "pip", "list"], config=cfg, root=root, env=env) == 4
    lock = Store(root).write_lock("uv")
    held = osapi.try_lock(lock)
    assert held is not None
    try:
        with pytest.raises(LockTimeout, match="shared uv cache"):
            shims.run_tool(["uv", "pip", "list"], config=cfg, root=root, env=env)
        # A command no configured tool claims runs without a lock.
        fake_tool(tmp_path / "real", "make", 3)
        assert shims.run_tool(["make"], config=cfg, root=root, env=env) == 3
    finally:
        held.release()


@pytest.mark.spawns
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shim script")
def test_an_installed_shim_passes_the_exit_code_of_the_real_command(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    shims.install(job_dir / "bin", ["uv"], windows=False)
    fake_tool(tmp_path / "real", "uv", 6)
    env = {"PATH": os.pathsep.join([str(job_dir / "bin"), str(tmp_path / "real")]), "CI_CACHE_JOB_DIR": str(job_dir),
           "CI_CACHE_ROOT": str(tmp_path / "root"), "HOME": str(tmp_path)}
    proc = subprocess.run(["uv", "--version"], env=env, capture_output=True, text=True, check=False,
                          executable=str(job_dir / "bin" / "uv"))
    assert proc.returncode == 6, proc.stderr
