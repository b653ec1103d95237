"""Unit tests for ci_cache_index: the generated wheels and sdists, and the in-tree backend they ship."""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ci_cache_index import PackageSpec, build_sdist, build_wheel, normalize
from ci_cache_index import backend as index_backend

SPEC = PackageSpec("Demo.Unit_Pkg", "2.1.0", deps=("demo-beta>=1", "demo-gamma"), files=4, size=2000)


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


def test_sdist_backend_rebuilds_the_same_wheel_and_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PackageSpec("demo-src", "0.5.0", deps=("demo-beta",), sdist=True)
    with tarfile.open(fileobj=io.BytesIO(build_sdist(spec)), mode="r:gz") as tf:
        members = {m.name for m in tf.getmembers() if m.isfile()}
        if hasattr(tarfile, "data_filter"):  # avoid 3.12+'s DeprecationWarning
            tf.extractall(tmp_path, filter="data")
        else:
            tf.extractall(tmp_path)
    top = tmp_path / "demo_src-0.5.0"
    assert {"PKG-INFO", "pyproject.toml", "backend.py", "demo_src/__init__.py"} <= {m.split("/", 1)[1] for m in members}
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


def _unpack_sdist(spec: PackageSpec, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(build_sdist(spec)), mode="r:gz") as tf:
        if hasattr(tarfile, "data_filter"):  # avoid 3.12+'s DeprecationWarning
            tf.extractall(into, filter="data")
        else:
            tf.extractall(into)
    return into / f"{spec.dist}-{spec.version}"


def test_sdist_ships_the_backend_module_byte_for_byte(tmp_path: Path) -> None:
    top = _unpack_sdist(PackageSpec("demo-src", sdist=True), tmp_path)
    assert (top / "backend.py").read_bytes() == Path(index_backend.__file__).read_bytes()


def test_backend_imports_only_the_standard_library() -> None:
    # It runs inside the sdist, where neither ci_cache_index nor any third-party package exists.
    tree = ast.parse(Path(index_backend.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import cannot work from an sdist's top level"
            imported.add((node.module or "").split(".")[0])
    stdlib = set(sys.stdlib_module_names) | {"__future__", "_typeshed"}
    assert imported and imported <= stdlib, imported - stdlib


def test_backend_takes_name_and_version_from_pkg_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = PackageSpec("Mixed.Case_Name", "3.0.1", sdist=True)
    monkeypatch.chdir(_unpack_sdist(spec, tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    assert index_backend.get_requires_for_build_sdist() == []
    assert index_backend.build_wheel(str(out)) == "mixed_case_name-3.0.1-py3-none-any.whl" == spec.wheel_name
    assert index_backend.build_sdist(str(out)) == "mixed_case_name-3.0.1.tar.gz" == spec.sdist_name


def test_backend_refuses_a_tree_it_did_not_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "PKG-INFO").write_bytes(b"Metadata-Version: 2.1\nSummary: no name\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="PKG-INFO names no Name or Version"):
        index_backend.build_wheel(str(tmp_path))


def test_names() -> None:
    assert normalize("Foo.Bar__baz-Qux") == "foo-bar-baz-qux"
    assert index_backend.dist_name("Foo.Bar__baz-Qux") == "foo_bar_baz_qux"
    assert SPEC.project == "demo-unit-pkg"
    assert SPEC.sdist_name == "demo_unit_pkg-2.1.0.tar.gz"


def test_sdist_is_a_reproducible_tar(tmp_path: Path) -> None:
    spec = PackageSpec("demo-src", "0.5.0", sdist=True)
    with tarfile.open(fileobj=io.BytesIO(build_sdist(spec)), mode="r:gz") as tf:
        members = tf.getmembers()
    assert members[0].name == "demo_src-0.5.0" and members[0].isdir()
    assert {m.mtime for m in members} == {index_backend.TAR_MTIME}
    assert {m.mode for m in members if m.isfile()} == {0o644}
    files = [m.name for m in members if m.isfile()]
    assert files == sorted(files)
