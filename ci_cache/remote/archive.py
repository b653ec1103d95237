"""A deterministic, safe archive of one folder: the same tree gives the same bytes on every OS.

The format is a POSIX (pax) tar stream, gzip-compressed at level 1 with an empty gzip header:
- entries sorted by their `/`-separated path, folders before what they hold;
- every mtime 0, owner 0:0 with no names, folders 0755, files 0644 or 0755 (any exec bit on POSIX;
  Windows has none, so there every file is 0644);
- only folders, regular files and relative symlinks that stay inside the tree.

Unpacking never trusts the stream: absolute names, `..`, links that leave the tree, hardlinks and device
files are refused, sizes and entry counts are bounded, and a truncated or corrupted stream is an error.
It unpacks into a folder that must not exist yet and deletes it on any failure: the caller builds it
beside its target and renames it in whole, so nobody ever sees a partial folder.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ci_cache import fsops, osapi
from ci_cache.errors import RemoteError, StoreError

MEDIA_TYPE = "application/x-tar+gzip"
COMPRESS_LEVEL = 1  # bench/remote_archive.py: 1/3 of plain tar; 1/3 the pack CPU of level 6 for 15% more
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What an archive may hold once unpacked; anything bigger is refused as hostile or broken."""

    max_bytes: int = 8 << 30
    max_entries: int = 500_000
    max_name: int = 1024


@dataclass
class Packed:
    """What went into an archive."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0


def _mode(st_mode: int) -> int:
    if stat.S_ISDIR(st_mode):
        return 0o755
    return 0o755 if (not osapi.IS_WINDOWS and st_mode & 0o111) else 0o644


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _walk(top: str, rel: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below `top` in sorted `/`-path order, folders before their contents."""
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}{entry.name}"
        yield name, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, name + "/")


def _inside(name: str, link: str) -> bool:
    """A relative link target that, resolved from `name`'s folder, stays inside the tree."""
    if not link or link.startswith("/") or "\\" in link or (len(link) > 1 and link[1] == ":"):
        return False
    depth = len(PurePosixPath(name).parts) - 1
    for part in PurePosixPath(link).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True


def pack(folder: Path, out: BinaryIO, *, level: int = COMPRESS_LEVEL) -> Packed:
    """Write the archive of `folder` to `out` (level 0 = a plain tar, no gzip)."""
    top = osapi.extended_path(os.path.abspath(folder), always=True)
    packed = Packed()
    sink: BinaryIO = out
    gz: gzip.GzipFile | None = None
    if level:
        # filename="" and mtime=0 keep the gzip header free of anything that differs between runs.
        gz = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=out, mtime=0)
        sink = gz  # type: ignore[assignment]
    try:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
            for name, entry in _walk(top):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    link = os.readlink(entry.path).replace(os.sep, "/")
                    if not _inside(name, link):
                        raise StoreError(f"{folder}: {name} is a link that leaves the folder ({link})",
                                         hint="only links inside the folder can be archived")
                    tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, link=link))
                elif stat.S_ISDIR(st.st_mode):
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                    packed.dirs += 1
                elif stat.S_ISREG(st.st_mode):
                    with open(entry.path, "rb") as fh:
                        tar.addfile(_info(name, tarfile.REGTYPE, _mode(st.st_mode), st.st_size), fh)
                    packed.files += 1
                    packed.bytes += st.st_size
                else:
                    raise StoreError(f"{folder}: {name} is neither a file, a folder nor a link",
                                     hint="remove it, or leave this folder out of the remote cache")
    finally:
        if gz is not None:
            gz.close()
    return packed


def pack_bytes(folder: Path, *, level: int = COMPRESS_LEVEL) -> tuple[bytes, Packed]:
    buf = io.BytesIO()
    packed = pack(folder, buf, level=level)
    return buf.getvalue(), packed


def _corrupt(what: str, problem: str) -> RemoteError:
    return RemoteError(f"{what}: {problem}", kind="corrupt",
                       hint="the blob is damaged or not a ci-cache archive; run `ci-cache remote verify`")


def _check_name(what: str, name: str, limits: Limits) -> PurePosixPath:
    path = PurePosixPath(name)
    if (not name or len(name) > limits.max_name or name.startswith("/") or "\\" in name or "\0" in name
            or ":" in path.parts[0] or any(p in ("..", ".") for p in path.parts)):
        raise _corrupt(what, f"refusing the unsafe entry name {name[:200]!r}")
    return path


def _is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def unpack(src: BinaryIO, dest: Path, *, what: str, limits: Limits | None = None) -> Packed:
    """Unpack a seekable archive (a file or bytes) into the new folder `dest` (deleted again on any failure).

    `what` names the blob in messages. Plain tar and gzip-compressed tar are both accepted.
    """
    limits = limits or Limits()
    top = osapi.extended_path(os.path.abspath(dest), always=True)
    fsops.mkdir(top)  # fails if it exists: the caller gives a fresh temp name
    try:
        return _unpack_into(src, top, what, limits)
    except BaseException:
        with contextlib.suppress(StoreError, OSError):
            fsops.rmtree(dest)
        raise


def _unpack_into(src: BinaryIO, top: str, what: str, limits: Limits) -> Packed:
    head = src.read(2)
    src.seek(-len(head), io.SEEK_CUR)
    stream: BinaryIO = src
    if _is_gzip(head):
        stream = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[assignment]
    packed = Packed()
    entries = 0
    links: list[tuple[str, str]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as tar:
            for member in tar:
                entries += 1
                if entries > limits.max_entries:
                    raise _corrupt(what, f"more than {limits.max_entries} entries")
                path = _check_name(what, member.name.rstrip("/"), limits)
                target = os.path.join(top, *path.parts)
                if member.isdir():
                    fsops.makedirs(Path(target))
                    packed.dirs += 1
                elif member.isreg():
                    packed.bytes += member.size
                    if packed.bytes > limits.max_bytes:
                        raise _corrupt(what, f"unpacks to more than {limits.max_bytes} bytes")
                    fsops.makedirs(Path(target).parent)
                    _write_member(tar, member, target, what)
                    packed.files += 1
                elif member.issym():
                    if not _inside(str(path), member.linkname):
                        raise _corrupt(what, f"refusing the link {member.name!r} -> {member.linkname!r}: "
                                             "it leaves the folder")
                    links.append((target, member.linkname))
                else:
                    raise _corrupt(what, f"refusing {member.name!r}: only files, folders and links are allowed")
        # Read to the end: gzip checks its CRC and length only there, after tar's end-of-archive blocks.
        while stream.read(_CHUNK):
            pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise _corrupt(what, f"unreadable archive ({type(exc).__name__}: {exc})") from exc
    if entries == 0:
        raise _corrupt(what, "the archive is empty")
    # Links last, so that no file is ever written through a link the archive made.
    for target, link in links:
        fsops.makedirs(Path(target).parent)
        try:
            fsops.symlink(link.replace("/", os.sep), target)
        except FileExistsError as exc:
            raise _corrupt(what, f"the link {os.path.relpath(target, top)!r} appears twice") from exc
    return packed


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str, what: str) -> None:
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - isreg() members always have a file object
        raise _corrupt(what, f"no data for {member.name!r}")
    remaining = member.size
    # O_EXCL: a name given twice in one archive is an error, never a silent overwrite.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(target, flags, 0o755 if member.mode & 0o111 else 0o644)
    except FileExistsError as exc:
        raise _corrupt(what, f"the entry {member.name!r} appears twice") from exc
    with os.fdopen(fd, "wb") as out:
        while remaining:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise _corrupt(what, f"truncated in {member.name!r}")
            out.write(chunk)
            remaining -= len(chunk)
