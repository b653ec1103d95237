"""Integration: real uv installs the generated packages (incl. building an sdist offline) from the server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_cache_index import IndexServer, build_index, demo_specs

pytestmark = pytest.mark.integration


def _find_uv() -> str | None:
    # Prefer the uv installed next to the test interpreter (the dev venv pins it).
    return shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


UV = _find_uv()
needs_uv = pytest.mark.skipif(
    UV is None, reason="uv not found next to sys.executable or on PATH (the dev venv installs it)"
)


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("index"), demo_specs())


@pytest.fixture
def uv_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment where uv only sees tmp_path: its own cache, home and no user/CI uv settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV"))}
    home = tmp_path / "home"
    env.update(
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON=sys.executable,
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        UV_NO_CONFIG="1",
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        LOCALAPPDATA=str(home / "AppData" / "Local"),
        TMPDIR=str(tmp_path / "tmp"),
        TEMP=str(tmp_path / "tmp"),
        TMP=str(tmp_path / "tmp"),
    )
    (tmp_path / "tmp").mkdir()
    yield env
    # Nothing may have landed in the (fake) home's caches: UV_CACHE_DIR was honoured.
    assert not (home / ".cache" / "uv").exists()
    assert not (home / "AppData" / "Local" / "uv").exists()


def _uv(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert UV is not None
    proc = subprocess.run([UV, *args], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"uv {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@needs_uv
def test_uv_installs_wheels_and_builds_sdist_offline(
    tmp_path: Path, index_root: Path, uv_env: dict[str, str]
) -> None:
    cache = Path(uv_env["UV_CACHE_DIR"])
    with IndexServer(index_root) as srv:
        venv = tmp_path / "venv"
        _uv(uv_env, "venv", "--quiet", str(venv))
        py = _venv_python(venv)
        _uv(uv_env, "pip", "install", "--python", str(py), "--index-url", srv.url, "demo-alpha", "demo-eta")
        downloads = set(srv.file_downloads())
        assert "/files/demo_eta-1.0.0.tar.gz" in downloads
        assert "/files/demo_alpha-1.0.0-py3-none-any.whl" in downloads

        check = (
            "import demo_alpha, demo_beta, demo_eta, demo_theta, demo_zeta.mod_0 as m; "
            "print(demo_alpha.__version__, demo_beta.__version__, demo_eta.__version__, m.INDEX)"
        )
        out = subprocess.run([str(py), "-c", check], capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.split() == ["1.0.0", "1.2.0", "1.0.0", "0"]

        # demo-eta has no wheel: uv must have built it from the sdist with the in-tree backend.
        sdist_buckets = list(cache.glob("sdists-v*"))
        assert sdist_buckets, f"no sdists-v* bucket in {sorted(p.name for p in cache.iterdir())}"
        assert any(p.name == "demo-eta" for b in sdist_buckets for p in b.rglob("demo-eta"))

        # A second venv from the warm cache fetches no distribution again.
        srv.clear_requests()
        venv2 = tmp_path / "venv2"
        _uv(uv_env, "venv", "--quiet", str(venv2))
        _uv(
            uv_env,
            "pip",
            "install",
            "--python",
            str(_venv_python(venv2)),
            "--index-url",
            srv.url,
            "demo-alpha",
        )
        assert srv.file_downloads() == []


def test_cli_serve_process(tmp_path: Path, index_root: Path) -> None:
    port_file, log = tmp_path / "port", tmp_path / "access.log"
    cmd = [sys.executable, "-m", "ci_cache_index", "serve", str(index_root)]
    proc = subprocess.Popen(
        [*cmd, "--port-file", str(port_file), "--access-log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Windows can only signal a console process group (CTRL_BREAK); POSIX gets a plain SIGTERM.
        creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once listening
        port = int(port_file.read_text())
        assert url == f"http://127.0.0.1:{port}/simple"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/demo-alpha", timeout=30) as resp:
            assert b"demo_alpha-1.0.0-py3-none-any.whl" in resp.read()
        proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert err == ""  # quiet: no per-request logging
        assert log.read_text().splitlines() == ["/simple/demo-alpha"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
