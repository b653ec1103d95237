"""Synthetic uv caches with real-shaped pointers, for the unit tests of the fleet tier's uv side.

`http_file` frames a msgpack header the way uv 0.13.8 writes its HTTP-cache files (header, padding,
a cache-policy blob, the header's length as a little-endian u64 at the end).
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

from ci_cache.tools.uv.buckets import Buckets
from tests.unit.uvcache import INDEX, SDISTS, SIMPLE, WHEELS, make_archive, write

BUCKETS = Buckets(wheels="wheels-v7", sdists="sdists-v10", simple="simple-v27", archive="archive-v0")
TOKEN = f"index-{INDEX}"


def pack(value: Any) -> bytes:
    """A msgpack encoder for the shapes uv writes (str, int, None, bool, list, dict)."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        if 0 <= value <= 0x7F:
            return bytes([value])
        if 0 <= value <= 0xFFFF:
            return b"\xcd" + value.to_bytes(2, "big")
        return b"\xcf" + value.to_bytes(8, "big")
    if isinstance(value, str):
        data = value.encode()
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        return b"\xd9" + bytes([len(data)]) + data
    if isinstance(value, list):
        return bytes([0x90 | len(value)]) + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        return bytes([0x80 | len(value)]) + b"".join(pack(k) + pack(v) for k, v in value.items())
    raise TypeError(value)


def http_file(header: Any, policy: bytes = b"\x93\x52\x0d\x6b" * 40) -> bytes:
    data = pack(header)
    padding = b"\0" * (-len(data) % 8)
    return data + padding + policy + struct.pack("<Q", len(data))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wheel_header(archive: str, name: str, version: str, platform: str = "any", *, as_map: bool = False) -> Any:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-{platform}.whl"
    fields = {"id": archive, "hashes": [{"Sha256": sha(filename)}], "filename": filename, "version": 0, "size": 3470}
    return fields if as_map else list(fields.values())


def add_wheel(cache: Path, name: str, version: str, archive: str, *, platform: str = "any",
              requires: tuple[str, ...] = (), windows_link: bool = False, source: str = WHEELS) -> Path:
    """A downloaded wheel's group with a real-shaped `.http`, its archive and its index listing."""
    make_archive(cache, archive, name, version, requires)
    folder = cache / source / name
    key = f"{version}-py3-none-{platform}"
    folder.mkdir(parents=True, exist_ok=True)
    if windows_link:
        write(folder / key, f"archive-v0/{archive}")
    else:
        os.symlink("../" * len(source.split("/")) + f"../archive-v0/{archive}", folder / key)
    write(folder / f"{key}.http", http_file(wheel_header(archive, name, version, platform)))
    write(folder / f"{key}.msgpack", pack([name, version, list(requires), None, [], False]))
    write(folder / f"{key}.lock", "")
    write(cache / SIMPLE / f"{name}.rkyv", f"rkyv listing of {name}", mtime_ns=1_700_000_000_000_000_000)
    return folder


def add_build(cache: Path, name: str, version: str, revision: str, archive: str, *, shard: str = "") -> Path:
    """An sdist uv built: `revision.http` (with the sdist's sha256), the revision folder, its build."""
    module = name.replace("-", "_")
    version_dir = cache / SDISTS / name / version
    write(version_dir / "revision.http", http_file([revision, [{"Sha256": sha(f"{name}-{version}.tar.gz")}], 5005]))
    write(version_dir / ".lock", "")
    rev = version_dir / revision
    write(rev / "src" / "PKG-INFO", f"Name: {name}\n")
    folder = rev / shard if shard else rev
    write(folder / "metadata.msgpack", pack([name, version, [], None, [], False]))
    write(folder / f"{module}-{version}-py3-none-any.whl", b"PK\x03\x04 built")
    depth = len(SDISTS.split("/")) + 3 + (1 if shard else 0)
    os.symlink("../" * depth + f"archive-v0/{archive}", folder / f"{module}-{version}-py3-none-any")
    make_archive(cache, archive, name, version)
    return version_dir
