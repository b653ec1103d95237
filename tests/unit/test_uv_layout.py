"""ci_cache.tools.uv.layout: buckets, links, pointers and revisions, as uv 0.13.8 writes them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ci_cache.store import Store
from ci_cache.tools.uv import layout
from ci_cache.tools.uv.layout import archive_id_of_link, bucket_kind
from tests.unit.uvcache import msgpack_str, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the synthetic caches use POSIX symlinks")


# ---------------------------------------------------------------------------------------------------
# Classification.


@pytest.mark.parametrize(
    ("name", "kind"),
    [("archive-v0", "archive"), ("wheels-v7", "wheels"), ("sdists-v10", "sdists"), ("simple-v27", "index"),
     ("flat-index-v2", "index"), ("git-v0", "other"), ("builds-v0", "never"), ("environments-v2", "never"),
     ("interpreter-v5", "interpreter"), (".tmpXYZ", "never"), (".lock", "never"), ("CACHEDIR.TAG", "never"),
     (".gitignore", "never"), ("random-folder", "never")],
)
def test_bucket_kind(name: str, kind: str) -> None:
    assert bucket_kind(name) == kind


def test_archive_id_of_links(tmp_path: Path) -> None:
    rel = tmp_path / "rel"
    os.symlink("../../../../archive-v0/abcDEF_123-x", rel)
    absolute = tmp_path / "abs"
    os.symlink("/cache/archive-v0/abcDEF_123-x", absolute)
    windows = write(tmp_path / "win", "archive-v0\\abcDEF_123-x")
    elsewhere = tmp_path / "elsewhere"
    os.symlink("../../../../wheels-v7/abcDEF_123-x", elsewhere)
    big = write(tmp_path / "big", "x" * 2000 + "archive-v0/abcDEF_123-x")
    assert archive_id_of_link(str(rel), is_symlink=True) == "abcDEF_123-x"
    assert archive_id_of_link(str(absolute), is_symlink=True) == "abcDEF_123-x"
    assert archive_id_of_link(str(windows), is_symlink=False) == "abcDEF_123-x"
    assert archive_id_of_link(str(elsewhere), is_symlink=True) is None
    assert archive_id_of_link(str(big), is_symlink=False) is None
    assert archive_id_of_link(str(tmp_path / "missing"), is_symlink=False) is None




def test_bucket_family_is_the_name_without_its_version() -> None:
    assert [layout.bucket_family(n) for n in ("wheels-v7", "flat-index-v2", "archive-v0")] == [
        "wheels", "flat-index", "archive"]
    assert layout.bucket_family("CACHEDIR.TAG") is None
    assert layout.bucket_family("wheels") is None


def test_linked_archive_reads_either_kind_of_link(tmp_path: Path) -> None:
    posix = tmp_path / "posix"
    os.symlink("../../../../archive-v0/abcDEF_123-x", posix)
    windows = write(tmp_path / "windows", "archive-v0\\abcDEF_123-x\r\n")
    plain = write(tmp_path / "plain.py", "x = 1\n")
    assert layout.linked_archive(posix) == layout.linked_archive(windows) == "abcDEF_123-x"
    assert layout.linked_archive(plain) is None


def test_folder_links_and_links_below_find_both_kinds_and_skip_group_files(tmp_path: Path) -> None:
    rev = tmp_path / "1.0.0" / "Revision00000001"
    os.symlink("../../../../../../archive-v0/PosixArchive0001", _mkdir(rev) / "pkg-1.0.0-py3-none-any")
    write(rev / "nested" / "pkg-1.0.0-cp312-win_amd64", "archive-v0\\WindowsArchive01")
    # Files that merely hold such text are no links: pointers, metadata, built wheels, locks.
    for name in ("x.http", "x.rev", "x.msgpack", "x.lock", "pkg-1.0.0-py3-none-any.whl"):
        write(rev / name, "archive-v0\\NotALink00000001")
    write(rev / ".tmpHalf" / "leftover", "archive-v0\\InATempDir000001")
    found = sorted((p.relative_to(tmp_path).as_posix(), a) for p, a in layout.links_below(tmp_path / "1.0.0"))
    assert found == [("1.0.0/Revision00000001/nested/pkg-1.0.0-cp312-win_amd64", "WindowsArchive01"),
                     ("1.0.0/Revision00000001/pkg-1.0.0-py3-none-any", "PosixArchive0001")]
    names = set(os.listdir(rev)) - {"nested", ".tmpHalf"}
    assert list(layout.folder_links(rev, names)) == [("pkg-1.0.0-py3-none-any", "PosixArchive0001")]


def test_group_and_sdist_pointers() -> None:
    names = {"1.0-py3-none-any", "1.0-py3-none-any.http", "1.0-py3-none-any.msgpack", "2.0-py3-none-any.rev",
             "2.0-py3-none-any.lock", "3.0-py3-none-any.msgpack"}
    assert layout.group_keys(names) == {"1.0-py3-none-any", "2.0-py3-none-any"}
    assert layout.group_pointer("1.0-py3-none-any", names) == "1.0-py3-none-any.http"
    assert layout.group_pointer("2.0-py3-none-any", names) == "2.0-py3-none-any.rev"
    assert layout.group_pointer("3.0-py3-none-any", names) is None
    assert layout.group_members("k") == ("k.http", "k.rev", "k.msgpack", "k")
    assert layout.sdist_pointer({"revision.rev", "Rev"}) == "revision.rev"
    assert layout.sdist_pointer({"revision.http", "revision.rev"}) == "revision.http"
    assert layout.sdist_pointer({"metadata.msgpack"}) is None


def test_first_id_finds_the_first_id_like_msgpack_string() -> None:
    short = msgpack_str("dBnyVKc0gGQcrWUa")
    long_id = "A" * 32
    assert layout.first_id(b"\x93" + msgpack_str("no") + short + msgpack_str("5QtKRzS_bUBNT8bH")) == "dBnyVKc0gGQcrWUa"
    assert layout.first_id(b"\x92\x01" + msgpack_str(long_id)) == long_id  # a str8 header
    assert layout.first_id(msgpack_str("has a space in it")) is None
    assert layout.first_id(b"revision pointer FY3KeYyCQtBgtm0N") is None  # plain text holds no msgpack string
    assert layout.first_id(b"") is None


def test_retarget_moves_only_absolute_links_into_the_old_root(tmp_path: Path) -> None:
    old, new = tmp_path / "job", tmp_path / "shared"
    assert layout.retarget(f"{old}/archive-v0/X", old, new) == f"{new}/archive-v0/X"
    assert layout.retarget("../../archive-v0/X", old, new) == "../../archive-v0/X"
    assert layout.retarget("/elsewhere/archive-v0/X", old, new) == "/elsewhere/archive-v0/X"
    tree = _mkdir(tmp_path / "tree" / "sub")
    os.symlink(f"{old}/archive-v0/X", tree / "absolute")
    os.symlink("../archive-v0/Y", tree / "relative")
    layout.retarget_tree_links(tmp_path / "tree", old, new)
    assert os.readlink(tree / "absolute") == f"{new}/archive-v0/X"
    assert os.readlink(tree / "relative") == "../archive-v0/Y"


def test_archive_ids_are_the_archive_folders(tmp_path: Path) -> None:
    assert layout.archive_ids(tmp_path) == []
    for name in ("B_archive", "A_archive", ".tmpHalf"):
        _mkdir(tmp_path / "archive-v0" / name)
    write(tmp_path / "archive-v0" / "stray-file", "")
    assert layout.archive_ids(tmp_path) == ["A_archive", "B_archive"]


def test_the_interpreter_store_sits_beside_the_shared_cache_and_is_no_tool(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    shared = store.shared_cache("uv")
    side = layout.interpreter_store(shared)
    _mkdir(shared)
    _mkdir(side)
    assert side.parent == shared.parent and side != shared
    assert store.shared_tools() == ["uv"]


def test_find_uv_looks_on_the_given_path_only(tmp_path: Path) -> None:
    fake = write(tmp_path / "bin" / "uv", "#!/bin/sh\n")
    fake.chmod(0o755)
    assert layout.find_uv({"PATH": str(tmp_path / "bin")}) == str(fake)
    assert layout.find_uv({"PATH": str(tmp_path)}) is None


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
