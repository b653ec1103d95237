"""Integration: real uv installs the generated packages (incl. building an sdist offline) from the server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ci_cache_index import IndexServer, PackageSpec, build_index, demo_specs

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


@contextmanager
def _serve_process(root: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m ci_cache_index serve ROOT FLAGS`` and the URL it printed once listening; killed if left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_cache_index", "serve", str(root), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Windows can only signal a console process group (CTRL_BREAK); POSIX gets a plain SIGTERM.
        creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
    )
    try:
        assert proc.stdout is not None
        yield proc, proc.stdout.readline().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stop(proc: subprocess.Popen[str]) -> str:
    """Signal the server to stop as a user would; returns its stderr once it exited 0."""
    proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_cli_serve_process(tmp_path: Path, index_root: Path) -> None:
    port_file, log = tmp_path / "port", tmp_path / "access.log"
    with _serve_process(index_root, "--port-file", str(port_file), "--access-log", str(log)) as (proc, url):
        port = int(port_file.read_text())
        assert url == f"http://127.0.0.1:{port}/simple"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/demo-alpha", timeout=30) as resp:
            assert b"demo_alpha-1.0.0-py3-none-any.whl" in resp.read()
        err = _stop(proc)
        assert err == ""  # quiet: no per-request logging
        assert log.read_text().splitlines() == ["/simple/demo-alpha"]


def test_cli_serve_process_with_a_network_profile(tmp_path: Path) -> None:
    root = build_index(tmp_path / "index", [PackageSpec("demo-one")])
    blob = root / "files" / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 256)  # 64 KiB: 0.33 s at 200 kB/s
    with _serve_process(root, "--latency-ms", "250", "--bandwidth", "200k") as (proc, url):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        started = time.perf_counter()
        with opener.open(url.replace("/simple", "/files/blob.bin"), timeout=30) as resp:
            data = resp.read()
        elapsed = time.perf_counter() - started
        assert data == blob.read_bytes()
        # A lower bound only: the profile can make a response slower, never faster.
        assert elapsed >= 0.25 + len(data) / 200_000
        assert _stop(proc) == "network profile: latency 250 ms, bandwidth 200,000 B/s shared\n"
