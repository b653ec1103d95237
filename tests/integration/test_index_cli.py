"""Integration: ``python -m ci_cache_index serve`` applies its network profile flags on the wire."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ci_cache_index import PackageSpec, build_index

pytestmark = pytest.mark.integration


def test_serve_process_with_a_network_profile(tmp_path: Path) -> None:
    root = build_index(tmp_path / "index", [PackageSpec("demo-one")])
    blob = root / "files" / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 256)  # 64 KiB: 0.33 s at 200 kB/s
    cmd = [sys.executable, "-m", "ci_cache_index", "serve", str(root), "--port-file", str(tmp_path / "port")]
    proc = subprocess.Popen(
        [*cmd, "--latency-ms", "250", "--bandwidth", "200k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed once listening
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        started = time.perf_counter()
        with opener.open(url.replace("/simple", "/files/blob.bin"), timeout=30) as resp:
            data = resp.read()
        elapsed = time.perf_counter() - started
        assert data == blob.read_bytes()
        # Lower bound only: the profile can make a response slower, never faster.
        assert elapsed >= 0.25 + len(data) / 200_000
        proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
