"""Unit tests for ci_cache_index's PEP 503 tree: built from specs, or over downloaded wheels; the spec sets."""

from __future__ import annotations

import ast
import hashlib
import os
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ci_cache_index import PackageSpec, build_index, demo_specs, index_files, normalize, scale_specs, simple
from ci_cache_index import cli as index_cli


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
            assert normalize(dep.split(">")[0].split("=")[0]) in projects
    assert [s.project for s in specs if s.sdist and not s.wheel] == ["demo-eta"]


def test_scale_specs() -> None:
    specs = scale_specs(5, 7)
    assert len({s.project for s in specs}) == 5
    assert all(s.files == 7 and s.wheel for s in specs)


def make_wheel(path: Path, name: str, version: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{name}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\n")


def test_index_files_lists_wheels_with_metadata(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    make_wheel(files / "Foo_Bar-1.0-py3-none-any.whl", "foo_bar", "1.0")
    make_wheel(files / "foo_bar-1.1-py3-none-any.whl", "foo_bar", "1.1")
    make_wheel(files / "zed-2.0-py3-none-any.whl", "zed", "2.0")
    names = index_files(tmp_path)
    assert len(names) == 3
    assert (files / "zed-2.0-py3-none-any.whl.metadata").read_text() == "Metadata-Version: 2.1\nName: zed\n"
    page = (tmp_path / "simple" / "foo-bar" / "index.html").read_text()
    assert page.count("<a href=") == 2
    assert 'href="../../files/Foo_Bar-1.0-py3-none-any.whl#sha256=' in page
    assert 'data-dist-info-metadata="sha256=' in page
    root = (tmp_path / "simple" / "index.html").read_text()
    assert '<a href="foo-bar/">' in root and '<a href="zed/">' in root
    before = (tmp_path / "simple" / "zed" / "index.html").stat().st_mtime_ns
    index_files(tmp_path)  # idempotent: unchanged pages are not rewritten
    assert (tmp_path / "simple" / "zed" / "index.html").stat().st_mtime_ns == before

    # The same links, hashes and metadata files as an index built from specs.
    link = next(x for x in _links(tmp_path / "simple" / "zed" / "index.html"))
    wheel, meta = files / "zed-2.0-py3-none-any.whl", files / "zed-2.0-py3-none-any.whl.metadata"
    assert link["href"] == f"../../files/{wheel.name}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}"
    assert link["data-core-metadata"] == f"sha256={hashlib.sha256(meta.read_bytes()).hexdigest()}"

    # A wheel that went away takes its project page with it.
    (files / "zed-2.0-py3-none-any.whl").unlink()
    assert index_files(tmp_path) == ["Foo_Bar-1.0-py3-none-any.whl", "foo_bar-1.1-py3-none-any.whl"]
    assert not (tmp_path / "simple" / "zed").exists()


def test_index_files_names_a_wheel_without_metadata(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    with zipfile.ZipFile(tmp_path / "files" / "bad-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("bad/__init__.py", "")
        zf.writestr("bad-1.0.dist-info/sub/METADATA", "not at the top of the dist-info")
    with pytest.raises(ValueError, match=r"bad-1\.0-py3-none-any\.whl: no \.dist-info/METADATA inside"):
        index_files(tmp_path)


def test_wheel_project() -> None:
    assert simple.wheel_project("Typing_Extensions-4.0-py3-none-any.whl") == "typing-extensions"


def test_listing_escapes_names_and_links_metadata_only_when_present() -> None:
    plain = simple.Listing("a-b", "a_b-1.0.tar.gz", "ab" * 32)
    assert plain.anchor() == f'<a href="../../files/a_b-1.0.tar.gz#sha256={"ab" * 32}">a_b-1.0.tar.gz</a><br/>'
    odd = simple.Listing("x", "x&<y>.whl", "00", "11")
    assert "x&amp;&lt;y&gt;.whl" in odd.anchor() and "<y>" not in odd.anchor()
    assert 'data-dist-info-metadata="sha256=11" data-core-metadata="sha256=11"' in odd.anchor()


def test_cli_build_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert index_cli.main(["build", str(tmp_path), "--scale", "3", "--files-per-package", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "simple").iterdir() if p.is_dir()) == [
        "scale-pkg-0000",
        "scale-pkg-0001",
        "scale-pkg-0002",
    ]
    assert "built 3 package specs" in capsys.readouterr().err


def test_cli_build_demo_with_scale(tmp_path: Path) -> None:
    assert index_cli.main(["build", str(tmp_path), "--demo", "--scale", "1", "--files-per-package", "1"]) == 0
    projects = {p.name for p in (tmp_path / "simple").iterdir() if p.is_dir()}
    assert projects == {s.project for s in demo_specs()} | {"scale-pkg-0000"}


def test_package_imports_nothing_from_ci_cache() -> None:
    # The index is a stand-in for a real package index: it must work without (and not shape) ci-cache.
    package = Path(simple.__file__).parent
    for module in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n == "ci_cache" or n.startswith("ci_cache.")], module.name
