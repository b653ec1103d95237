"""Unit tests for ci_cache_index's server: what it serves and records, and its network profile on the wire."""

from __future__ import annotations

import io
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ci_cache_index import IndexServer, NetworkProfile, PackageSpec, build_index, network
from ci_cache_index import cli as index_cli

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def _no_proxy_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, b""


def _timed_get(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, data = _no_proxy_get(url)
    assert status == 200
    return time.perf_counter() - started, data


def test_server_serves_and_records_requests(tmp_path: Path) -> None:
    build_index(tmp_path / "idx", [PackageSpec("demo-one", deps=()), PackageSpec("demo-two", sdist=True)])
    log = tmp_path / "access.log"
    with IndexServer(tmp_path / "idx", access_log=log) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}/simple"
        base = srv.url.rsplit("/", 1)[0]
        status, slash = _no_proxy_get(f"{srv.url}/demo-one/")
        assert status == 200 and b"demo_one-1.0.0-py3-none-any.whl" in slash
        assert _no_proxy_get(f"{srv.url}/demo-one") == (200, slash)  # no redirect needed
        status, data = _no_proxy_get(f"{base}/files/demo_two-1.0.0.tar.gz")
        assert status == 200
        assert data == (tmp_path / "idx" / "files" / "demo_two-1.0.0.tar.gz").read_bytes()
        assert _no_proxy_get(f"{srv.url}/missing/")[0] == 404
        expected = [
            "/simple/demo-one/",
            "/simple/demo-one",
            "/files/demo_two-1.0.0.tar.gz",
            "/simple/missing/",
        ]
        assert srv.requests == expected
        assert srv.file_downloads() == ["/files/demo_two-1.0.0.tar.gz"]
        assert log.read_text().splitlines() == expected
        srv.clear_requests()
        assert srv.requests == []
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_cli_serve_refuses_unbuilt_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert index_cli.main(["serve", str(tmp_path)]) == 2
    assert "run `build" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# Network profile. Throttling only ever adds time, so these assert lower bounds: they cannot flake on a
# slow machine, and they stay small (well under a second each).


def _blob_index(root: Path, size: int) -> Path:
    build_index(root, [PackageSpec("demo-one")])
    blob = root / "files" / "blob.bin"
    blob.write_bytes(bytes(range(256)) * (size // 256))
    return blob


def test_default_server_is_plain_loopback(tmp_path: Path) -> None:
    srv = IndexServer(tmp_path)
    assert srv.network == NetworkProfile()
    assert not srv.network.active and srv.network.describe() == "loopback"
    assert srv.link is None


def test_latency_delays_every_response(tmp_path: Path) -> None:
    build_index(tmp_path, [PackageSpec("demo-one")])
    latency = 0.15
    with IndexServer(tmp_path, network=NetworkProfile(latency=latency)) as srv:
        elapsed, page = _timed_get(f"{srv.url}/demo-one/")
        assert b"demo_one-1.0.0-py3-none-any.whl" in page
        assert elapsed >= latency
        started = time.perf_counter()
        assert _no_proxy_get(f"{srv.url}/missing/")[0] == 404  # errors pay the round trip too
        assert time.perf_counter() - started >= latency
        assert srv.requests == ["/simple/demo-one/", "/simple/missing/"]


def test_bandwidth_caps_a_download(tmp_path: Path) -> None:
    blob = _blob_index(tmp_path, 96 * 1024)
    rate = 320_000  # bytes/s: the body alone needs 0.31 s
    with IndexServer(tmp_path, network=NetworkProfile(bandwidth=rate)) as srv:
        elapsed, data = _timed_get(f"http://127.0.0.1:{srv.port}/files/blob.bin")
    assert data == blob.read_bytes()  # throttled, not truncated or reordered
    assert elapsed >= len(data) / rate


def test_bandwidth_is_shared_by_all_connections(tmp_path: Path) -> None:
    blob = _blob_index(tmp_path, 96 * 1024)
    size, rate = blob.stat().st_size, 640_000  # one download alone needs 0.15 s, two at once 0.31 s
    results: list[tuple[float, bytes]] = []
    with IndexServer(tmp_path, network=NetworkProfile(bandwidth=rate)) as srv:
        url = f"http://127.0.0.1:{srv.port}/files/blob.bin"
        started = time.perf_counter()
        threads = [threading.Thread(target=lambda: results.append(_timed_get(url))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        both = time.perf_counter() - started
    assert [data == blob.read_bytes() for _, data in results] == [True, True]
    assert both >= 2 * size / rate  # a per-connection cap would let both finish in size / rate


def test_latency_and_bandwidth_add_up(tmp_path: Path) -> None:
    blob = _blob_index(tmp_path, 32 * 1024)
    profile = NetworkProfile(latency=0.1, bandwidth=200_000)
    assert profile.active
    assert profile.describe() == "latency 100 ms, bandwidth 200,000 B/s shared"
    with IndexServer(tmp_path, network=profile) as srv:
        elapsed, _ = _timed_get(f"http://127.0.0.1:{srv.port}/files/blob.bin")
    assert elapsed >= 0.1 + blob.stat().st_size / 200_000


@pytest.mark.parametrize(
    ("latency", "bandwidth", "message"),
    [
        (-0.01, None, "latency must be >= 0"),
        (float("nan"), None, "latency must be >= 0"),
        (0.0, 0, "bandwidth must be > 0"),
        (0.0, -5, "bandwidth must be > 0"),
    ],
)
def test_network_profile_refuses_impossible_values(latency: float, bandwidth: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkProfile(latency=latency, bandwidth=bandwidth)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("2048", 2048),
        ("500k", 500_000),
        ("500K", 500_000),
        ("12.5M", 12_500_000),
        ("1G", 10**9),
        ("10MB/s", 10_000_000),
        (" 3 MB ", 3_000_000),
    ],
)
def test_parse_bandwidth(text: str, rate: int) -> None:
    assert network.parse_bandwidth(text) == rate


@pytest.mark.parametrize("text", ["fast", "", "-1M", "0", "0.0001", "5T", "1e6"])
def test_parse_bandwidth_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        network.parse_bandwidth(text)


def test_link_books_bytes_back_to_back() -> None:
    link = network.Link(1)  # 1 byte/s: bookings far in the future, so the clock cannot interfere
    first = link.book(1000)
    assert first >= time.perf_counter() + 990
    assert link.book(10) == first + 10
    assert network.Link(409_600).chunk == 4096  # about 10 ms of the link per chunk
    assert network.Link(1).chunk == 4096 and network.Link(10**12).chunk == 256 * 1024


def test_throttled_writer_sends_everything_in_chunks() -> None:
    class Raw(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[int] = []

        def write(self, b: ReadableBuffer, /) -> int:
            self.sizes.append(memoryview(b).nbytes)
            return super().write(b)

    raw = Raw()
    writer = network.ThrottledWriter(raw, network.Link(10**12))  # fast enough not to sleep
    data = bytes(range(256)) * 2400  # 600 KiB
    assert writer.write(data) == len(data)
    assert writer.write(b"") == 0
    assert raw.sizes == [256 * 1024, 256 * 1024, len(data) - 512 * 1024]
    assert raw.getvalue() == data
    writer.flush()
    writer.close()
    assert writer.closed and raw.closed


def test_cli_serve_builds_the_server_from_its_flags(tmp_path: Path) -> None:
    args = index_cli.parser().parse_args(
        ["serve", str(tmp_path), "--latency-ms", "30", "--bandwidth", "12.5M", "--simple-max-age", "0"]
    )
    srv = index_cli.server_from_args(args)
    assert srv.network == NetworkProfile(latency=0.03, bandwidth=12_500_000)
    assert srv.simple_max_age == 0 and srv.root == tmp_path
    plain = index_cli.server_from_args(index_cli.parser().parse_args(["serve", str(tmp_path)]))
    assert plain.network == NetworkProfile()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bandwidth", "fast"], "argument --bandwidth: bandwidth 'fast' is not a number of bytes/s"),
        (["--bandwidth", "0"], "argument --bandwidth: bandwidth '0' must be more than 0"),
        (["--latency-ms", "-5"], "argument --latency-ms: '-5' is not a number of milliseconds >= 0"),
        (["--latency-ms", "inf"], "argument --latency-ms: 'inf' is not a number of milliseconds >= 0"),
    ],
)
def test_cli_serve_refuses_bad_network_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        index_cli.main(["serve", str(tmp_path), *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
