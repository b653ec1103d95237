"""The deterministic archive: same tree, same bytes; and unpacking refuses whatever is unsafe or broken."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from ci_cache.errors import RemoteError, StoreError
from ci_cache.remote import archive
from ci_cache.remote.archive import Limits


def _make(root: Path, order: list[str], *, mtime: float) -> Path:
    """The same content created in a different order, with different mtimes and umask-ish modes."""
    files = {"pkg/__init__.py": b"x = 1\n", "pkg/sub/mod.py": b"y = 2\n" * 100, "pkg-1.0.dist-info/RECORD": b"r\n",
             "pkg/data/blob.bin": bytes(range(256)) * 50, "pkg/ünïcode-名前.txt": b"u\n",
             "pkg/" + "long" * 40 + ".py": b"long name\n"}
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name])
        path.chmod(0o664 if mtime > 1e9 else 0o600)
        os.utime(path, (mtime, mtime))
    (root / "pkg" / "empty-dir").mkdir(exist_ok=True)
    return root


NAMES = ["pkg/__init__.py", "pkg/sub/mod.py", "pkg-1.0.dist-info/RECORD", "pkg/data/blob.bin",
         "pkg/ünïcode-名前.txt", "pkg/" + "long" * 40 + ".py"]


@pytest.mark.parametrize("level", [0, 1, 6])
def test_same_tree_gives_the_same_bytes(tmp_path: Path, level: int) -> None:
    a = _make(tmp_path / "a", NAMES, mtime=time.time())
    b = _make(tmp_path / "b", list(reversed(NAMES)), mtime=123456.0)
    data_a, packed = archive.pack_bytes(a, level=level)
    data_b, _ = archive.pack_bytes(b, level=level)
    assert data_a == data_b
    assert packed.files == len(NAMES)
    with tarfile.open(fileobj=io.BytesIO(data_a)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/")) or names[0] == "pkg"
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0} and {m.uname for m in members} == {""}
    assert all("\\" not in n for n in names)


def test_exec_bit_is_kept_and_nothing_else(tmp_path: Path) -> None:
    src = _make(tmp_path / "src", NAMES, mtime=1.0)
    (src / "pkg" / "tool").write_bytes(b"#!/bin/sh\n")
    (src / "pkg" / "tool").chmod(0o700)
    data, _ = archive.pack_bytes(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes["pkg/tool"] == 0o755
    assert modes["pkg/__init__.py"] == 0o644 and modes["pkg"] == 0o755
    out = tmp_path / "out"
    archive.unpack(io.BytesIO(data), out, what="blob")
    assert os.access(out / "pkg" / "tool", os.X_OK) and not os.access(out / "pkg" / "__init__.py", os.X_OK)


def test_round_trip(tmp_path: Path) -> None:
    src = _make(tmp_path / "src", NAMES, mtime=1.0)
    os.symlink("sub/mod.py", src / "pkg" / "alias.py")
    data, _ = archive.pack_bytes(src)
    out = tmp_path / "out"
    unpacked = archive.unpack(io.BytesIO(data), out, what="blob")
    assert unpacked.files == len(NAMES)
    for name in NAMES:
        assert (out / name).read_bytes() == (src / name).read_bytes()
    assert (out / "pkg" / "empty-dir").is_dir()
    assert os.readlink(out / "pkg" / "alias.py") == "sub/mod.py"


def test_pack_refuses_links_that_leave_the_folder(tmp_path: Path) -> None:
    src = _make(tmp_path / "src", NAMES, mtime=1.0)
    os.symlink("../../outside", src / "pkg" / "escape")
    with pytest.raises(StoreError, match="link that leaves the folder"):
        archive.pack_bytes(src)


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], *, gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


@pytest.mark.parametrize(("members", "says"), [
    ([_file("/etc/passwd")], "unsafe entry name"),
    ([_file("a/../../x")], "unsafe entry name"),
    ([_file("C:/x")], "unsafe entry name"),
    ([_file("a\\..\\x")], "unsafe entry name"),
    ([_special("a/link", tarfile.SYMTYPE, "../../etc")], "leaves the folder"),
    ([_special("link", tarfile.SYMTYPE, "/etc/passwd")], "leaves the folder"),
    ([_file("a"), _special("b", tarfile.LNKTYPE, "a")], "only files, folders and links"),
    ([_special("dev", tarfile.CHRTYPE)], "only files, folders and links"),
    ([_special("fifo", tarfile.FIFOTYPE)], "only files, folders and links"),
    ([_file("same"), _file("same")], "appears twice"),
    ([], "empty"),
])
def test_unpack_refuses_unsafe_archives(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]],
                                        says: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(RemoteError, match=says) as caught:
        archive.unpack(io.BytesIO(_tar(members)), out, what="blob abc")
    assert caught.value.kind == "corrupt" and "blob abc" in str(caught.value)
    assert not out.exists()  # never a partial folder
    assert not (tmp_path / "etc").exists()


def test_unpack_refuses_a_link_then_a_file_through_it(tmp_path: Path) -> None:
    """Links are made last, so a later file can never be written through one: the names collide instead."""
    members = [_special("d", tarfile.SYMTYPE, "."), _file("d/x")]
    out = tmp_path / "out"
    with pytest.raises(RemoteError, match="appears twice"):
        archive.unpack(io.BytesIO(_tar(members)), out, what="blob")
    assert not out.exists() and not (tmp_path / "x").exists()


def test_truncated_and_corrupted_streams_are_errors(tmp_path: Path) -> None:
    src = _make(tmp_path / "src", NAMES, mtime=1.0)
    data, _ = archive.pack_bytes(src)
    for i, broken in enumerate([data[: len(data) // 2], data[:-9], data[:30] + bytes([data[30] ^ 0xFF]) + data[31:],
                                b"\x1f\x8b" + b"not gzip at all" * 10, b"plain junk that is no tar" * 40]):
        out = tmp_path / f"out{i}"
        with pytest.raises(RemoteError) as caught:
            archive.unpack(io.BytesIO(broken), out, what="blob")
        assert caught.value.kind == "corrupt", i
        assert not out.exists(), i


def test_limits(tmp_path: Path) -> None:
    data = _tar([_file(f"f{i}", b"y" * 100) for i in range(10)])
    with pytest.raises(RemoteError, match="more than 5 entries"):
        archive.unpack(io.BytesIO(data), tmp_path / "a", what="b", limits=Limits(max_entries=5))
    with pytest.raises(RemoteError, match="more than 500 bytes"):
        archive.unpack(io.BytesIO(data), tmp_path / "b", what="b", limits=Limits(max_bytes=500))
    with pytest.raises(RemoteError, match="unsafe entry name"):
        archive.unpack(io.BytesIO(_tar([_file("n" * 50)])), tmp_path / "c", what="b", limits=Limits(max_name=20))
    assert not any((tmp_path / n).exists() for n in "abc")


def test_unpack_needs_a_fresh_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        archive.unpack(io.BytesIO(_tar([_file("x")])), tmp_path / "taken", what="b")


def test_plain_tar_is_accepted(tmp_path: Path) -> None:
    archive.unpack(io.BytesIO(_tar([_file("a/b.txt", b"hi")], gz=False)), tmp_path / "o", what="b")
    assert (tmp_path / "o" / "a" / "b.txt").read_bytes() == b"hi"
