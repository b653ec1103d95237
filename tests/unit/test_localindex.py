"""Unit tests for ci_cache.localindex: generated wheels/sdists, the PEP 503 tree and the server."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ci_cache import localindex
from ci_cache.localindex import IndexServer, PackageSpec, build_index, build_sdist, build_wheel, demo_specs

SPEC = PackageSpec("Demo.Unit_Pkg", "2.1.0", deps=("demo-beta>=1", "demo-gamma"), files=4, size=2000)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _links(page: Path) -> list[dict[str, str | None]]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.links


def _no_proxy_get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=30) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_wheel_is_valid_and_record_hashes_match() -> None:
    zf = zipfile.ZipFile(io.BytesIO(build_wheel(SPEC)))
    assert zf.testzip() is None
    names = zf.namelist()
    info = "demo_unit_pkg-2.1.0.dist-info"
    assert SPEC.wheel_name == "demo_unit_pkg-2.1.0-py3-none-any.whl"
    assert names[-1] == f"{info}/RECORD"
    assert {f"demo_unit_pkg/mod_{i}.py" for i in range(4)} <= set(names)

    rows = [line.split(",") for line in zf.read(f"{info}/RECORD").decode().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(names)
    for path, digest, size in rows:
        if path.endswith("RECORD"):
            assert (digest, size) == ("", "")
            continue
        data = zf.read(path)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"
        assert int(size) == len(data)

    metadata = zf.read(f"{info}/METADATA").decode()
    assert "Name: Demo.Unit_Pkg\n" in metadata
    assert "Version: 2.1.0\n" in metadata
    assert "Requires-Dist: demo-beta>=1\nRequires-Dist: demo-gamma\n" in metadata
    wheel = zf.read(f"{info}/WHEEL").decode()
    assert "Root-Is-Purelib: true" in wheel
    assert "Tag: py3-none-any" in wheel
    # Each module is roughly `size` bytes of Python.
    assert 2000 <= zf.getinfo("demo_unit_pkg/mod_0.py").file_size < 2200


def test_wheel_package_imports_with_version(tmp_path: Path) -> None:
    zipfile.ZipFile(io.BytesIO(build_wheel(SPEC))).extractall(tmp_path)
    init = tmp_path / "demo_unit_pkg" / "__init__.py"
    spec = importlib.util.spec_from_file_location("demo_unit_pkg", init)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__version__ == "2.1.0"
    assert module.MODULES == ("mod_0", "mod_1", "mod_2", "mod_3")
    for name in module.MODULES:  # every generated module is valid Python
        compile((tmp_path / "demo_unit_pkg" / f"{name}.py").read_text(), name, "exec")


def test_builds_are_deterministic_and_content_depends_on_spec() -> None:
    assert build_wheel(SPEC) == build_wheel(SPEC)
    assert build_sdist(SPEC) == build_sdist(SPEC)
    other = PackageSpec(SPEC.name, "2.1.1", deps=SPEC.deps, files=4, size=2000)
    assert build_wheel(other) != build_wheel(SPEC)
    names = zipfile.ZipFile(io.BytesIO(build_wheel(PackageSpec("x", ext=True)))).namelist()
    assert "x/_native.bin" in names


def test_sdist_backend_rebuilds_the_same_wheel_and_sdist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = PackageSpec("demo-src", "0.5.0", deps=("demo-beta",), sdist=True)
    with tarfile.open(fileobj=io.BytesIO(build_sdist(spec)), mode="r:gz") as tf:
        members = {m.name for m in tf.getmembers() if m.isfile()}
        if hasattr(tarfile, "data_filter"):  # avoid 3.12+'s DeprecationWarning
            tf.extractall(tmp_path, filter="data")
        else:
            tf.extractall(tmp_path)
    top = tmp_path / "demo_src-0.5.0"
    assert {"PKG-INFO", "pyproject.toml", "backend.py", "demo_src/__init__.py"} <= {
        m.split("/", 1)[1] for m in members
    }
    pyproject = (top / "pyproject.toml").read_text()
    assert "requires = []" in pyproject
    assert 'build-backend = "backend"' in pyproject
    assert 'backend-path = ["."]' in pyproject

    # Run the in-tree PEP 517 hooks the way a frontend does: cwd = source tree.
    monkeypatch.chdir(top)
    loader_spec = importlib.util.spec_from_file_location("_li_backend", top / "backend.py")
    assert loader_spec is not None and loader_spec.loader is not None
    backend = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(backend)
    out = tmp_path / "out"
    out.mkdir()
    assert backend.get_requires_for_build_wheel() == []
    assert backend.prepare_metadata_for_build_wheel(str(out)) == "demo_src-0.5.0.dist-info"
    assert "Requires-Dist: demo-beta" in (out / "demo_src-0.5.0.dist-info" / "METADATA").read_text()
    wheel_name = backend.build_wheel(str(out))
    assert wheel_name == spec.wheel_name
    assert (out / wheel_name).read_bytes() == build_wheel(spec)
    sdist_name = backend.build_sdist(str(out))
    assert (out / sdist_name).read_bytes() == build_sdist(spec)


def test_index_lists_files_with_correct_hashes_and_metadata(tmp_path: Path) -> None:
    specs = demo_specs()
    assert build_index(tmp_path, specs) == tmp_path
    projects = {s.project for s in specs}
    root_hrefs = {link["href"] for link in _links(tmp_path / "simple" / "index.html")}
    assert root_hrefs == {f"{p}/" for p in projects}

    listed: set[str] = set()
    for project in projects:
        page = tmp_path / "simple" / project / "index.html"
        for link in _links(page):
            href = link["href"]
            assert href is not None and href.startswith("../../files/")
            url, _, fragment = href.partition("#")
            target = (page.parent / url).resolve()
            assert fragment == f"sha256={hashlib.sha256(target.read_bytes()).hexdigest()}"
            assert "data-requires-python" not in link
            if target.name.endswith(".whl"):
                meta = Path(f"{target}.metadata").read_bytes()
                assert link["data-core-metadata"] == f"sha256={hashlib.sha256(meta).hexdigest()}"
                owner = next(s for s in specs if s.wheel_name == target.name)
                assert meta.count(b"Requires-Dist: ") == len(owner.deps)
            listed.add(target.name)
    expected = {s.wheel_name for s in specs if s.wheel} | {s.sdist_name for s in specs if s.sdist}
    assert listed == expected
    assert {p.name for p in (tmp_path / "files").iterdir()} == expected | {
        f"{n}.metadata" for n in expected if n.endswith(".whl")
    }


def test_build_index_is_idempotent_and_drops_stale_entries(tmp_path: Path) -> None:
    specs = demo_specs()
    build_index(tmp_path, specs)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    for p in before:  # make any rewrite visible even on coarse-mtime filesystems
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    build_index(tmp_path, specs)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert set(after) == set(before)
    assert set(after.values()) == {1_000_000_000}

    build_index(tmp_path, [s for s in specs if s.project != "demo-zeta"])
    assert not (tmp_path / "simple" / "demo-zeta").exists()
    assert not list((tmp_path / "files").glob("demo_zeta*"))
    assert "demo-zeta" not in (tmp_path / "simple" / "index.html").read_text()


def test_build_index_rejects_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        build_index(tmp_path, [PackageSpec("a"), PackageSpec("A", "1.0.0")])
    with pytest.raises(ValueError, match="neither"):
        build_index(tmp_path, [PackageSpec("a", wheel=False)])


def test_demo_specs_form_a_closed_graph_with_one_sdist_only_package() -> None:
    specs = demo_specs()
    projects = {s.project for s in specs}
    assert len(projects) == 8
    for spec in specs:
        for dep in spec.deps:
            assert localindex.normalize(dep.split(">")[0].split("=")[0]) in projects
    assert [s.project for s in specs if s.sdist and not s.wheel] == ["demo-eta"]


def test_scale_specs() -> None:
    specs = localindex.scale_specs(5, 7)
    assert len({s.project for s in specs}) == 5
    assert all(s.files == 7 and s.wheel for s in specs)


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


def test_cli_build_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert localindex.main(["build", str(tmp_path), "--scale", "3", "--files-per-package", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "simple").iterdir() if p.is_dir()) == [
        "scale-pkg-0000",
        "scale-pkg-0001",
        "scale-pkg-0002",
    ]
    assert "built 3 package specs" in capsys.readouterr().err


def test_cli_serve_refuses_unbuilt_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert localindex.main(["serve", str(tmp_path)]) == 2
    assert "run `build" in capsys.readouterr().err
