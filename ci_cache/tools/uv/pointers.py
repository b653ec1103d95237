"""Reading uv's pointer files: which archive or revision they name, and the sha256 of the file behind it.

Measured on uv 0.13.8 (the version the tests pin), from caches it built from the local index:

- `wheels-v7/<source>/<name>/<version>-<tags>.http` (a wheel downloaded over HTTP) is uv's HTTP-cache
  file: a msgpack header, padding, an rkyv cache-policy blob, and last the header's length as a
  little-endian u64. The header is the array `[archive id, hashes, wheel filename, archive version,
  wheel size]`, e.g. `["DqzFa2Sg8GcEWeV8", [{"Sha256": "491a...e9ff"}], "demo_alpha-1.0.0-py3-none-any.whl",
  0, 3470]`. The sha256 is the wheel file's, the one `uv.lock` lists; the archive version 0 means
  `archive-v0`. Older uv wrote the header as a map with the same field names: both are read.
- The group's `<key>` is `<version>-<python>-<abi>-<platform>`, or `<version>-<16 hex digits>` when the tags
  are long (every manylinux wheel of the realistic set: `numpy/2.4.6-cp311-cp311-manylinux_2_27_x86_64.
  manylinux_2_28_x86_64` but `sqlalchemy/2.1.9-516d0c2242d49034`). `<key>.msgpack` is uv's metadata
  `[name, version, [requires-dist], requires-python, extras, dynamic]`, HTTP-cache framed like the
  `.http` when it came from the index's `.metadata` file.
- `<key>.rev` (a wheel from a local file) is plain msgpack `[[mtime s, ns], [archive id, [], filename,
  0, nil]]`: no hash, and only valid while the local file keeps its mtime, so never shared.
- `sdists-v10/<source>/<name>/<version>/revision.http` has the same framing around `[revision id,
  hashes, sdist size]`; the sha256 is the sdist's, as `uv.lock` lists it. `revision.rev` (a local
  sdist) is `[[cache info...], [revision id, [], nil]]`.
- The revision folder holds `metadata.msgpack` and, per build, a link named by the built wheel's stem
  to its unpacked archive; builds with config settings sit one level down, in a folder named by their
  digest. uv installs a built wheel from that link; neither `src/` nor the built `.whl` is needed
  (checked: `uv pip install --offline` succeeds without them).
- On Windows the link is a text file holding `archive-v0/<id>` (checked with uv.exe 0.13.8 under Wine).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
_MAX_DEPTH = 16
_MAX_ITEMS = 1 << 16


class PointerError(ValueError):
    """A pointer file that is truncated, garbage, or of a shape this ci-cache does not know."""


# ---------------------------------------------------------------------------------------------------
# A small msgpack reader: only what uv's pointers hold, every length checked against the data.


def _need(data: bytes, end: int) -> None:
    if end > len(data):
        raise PointerError("truncated msgpack data")


def _uint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    _need(data, pos + size)
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def _items(data: bytes, pos: int, count: int, depth: int, pairs: bool) -> tuple[Any, int]:
    if count > _MAX_ITEMS:
        raise PointerError(f"a msgpack container of {count} items")
    if pairs:
        out: dict[Any, Any] = {}
        for _ in range(count):
            key, pos = _decode(data, pos, depth + 1)
            value, pos = _decode(data, pos, depth + 1)
            if isinstance(key, list | dict):
                raise PointerError("a msgpack map with a container key")
            out[key] = value
        return out, pos
    values = []
    for _ in range(count):
        value, pos = _decode(data, pos, depth + 1)
        values.append(value)
    return values, pos


def _raw(data: bytes, pos: int, length: int, text: bool) -> tuple[Any, int]:
    _need(data, pos + length)
    chunk = data[pos:pos + length]
    if not text:
        return chunk, pos + length
    try:
        return chunk.decode("utf-8"), pos + length
    except UnicodeDecodeError as exc:
        raise PointerError("a msgpack string that is not UTF-8") from exc


_FIXED = {0xC0: None, 0xC2: False, 0xC3: True}
_LENGTHS = {0xC4: (1, False), 0xC5: (2, False), 0xC6: (4, False),  # bin 8/16/32
            0xD9: (1, True), 0xDA: (2, True), 0xDB: (4, True)}  # str 8/16/32
_CONTAINERS = {0xDC: (2, False), 0xDD: (4, False), 0xDE: (2, True), 0xDF: (4, True)}  # array/map 16/32
_INTS = {0xCC: (1, False), 0xCD: (2, False), 0xCE: (4, False), 0xCF: (8, False),
         0xD0: (1, True), 0xD1: (2, True), 0xD2: (4, True), 0xD3: (8, True)}


def _decode(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise PointerError("msgpack nested too deeply")
    _need(data, pos + 1)
    b = data[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0x80 <= b <= 0x8F:
        return _items(data, pos, b & 0x0F, depth, pairs=True)
    if 0x90 <= b <= 0x9F:
        return _items(data, pos, b & 0x0F, depth, pairs=False)
    if 0xA0 <= b <= 0xBF:
        return _raw(data, pos, b & 0x1F, text=True)
    if b in _FIXED:
        return _FIXED[b], pos
    if b in _LENGTHS:
        size, text = _LENGTHS[b]
        length, pos = _uint(data, pos, size)
        return _raw(data, pos, length, text)
    if b in _CONTAINERS:
        size, pairs = _CONTAINERS[b]
        count, pos = _uint(data, pos, size)
        return _items(data, pos, count, depth, pairs)
    if b in _INTS:
        size, signed = _INTS[b]
        _need(data, pos + size)
        return int.from_bytes(data[pos:pos + size], "big", signed=signed), pos + size
    if b in (0xCA, 0xCB):
        size = 4 if b == 0xCA else 8
        _need(data, pos + size)
        return struct.unpack(">f" if size == 4 else ">d", data[pos:pos + size])[0], pos + size
    raise PointerError(f"msgpack type 0x{b:02x} is not used by uv's pointers")


def unpack_msgpack(data: bytes) -> Any:
    """One msgpack value that spans all of `data`."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise PointerError(f"{len(data) - end} bytes after the msgpack value")
    return value


def http_header(data: bytes) -> bytes:
    """The msgpack header of an HTTP-cache file: its length is the file's last 8 bytes (u64, LE)."""
    if len(data) < 9:
        raise PointerError(f"{len(data)} bytes: too short for an HTTP-cache file")
    length = struct.unpack("<Q", data[-8:])[0]
    if not 0 < length <= len(data) - 8:
        raise PointerError(f"the header length {length} does not fit a file of {len(data)} bytes")
    return data[:length]


# ---------------------------------------------------------------------------------------------------
# Pointers.


@dataclass(frozen=True)
class WheelPointer:
    """What a wheel group's pointer says: the archive uv installs from, and the wheel behind it."""

    archive: str
    sha256: str | None  # None for a local file's `.rev`
    filename: str
    archive_version: int
    size: int | None


@dataclass(frozen=True)
class RevisionPointer:
    """What an sdist version folder's `revision.http`/`.rev` says: its revision folder and the sdist's sha256."""

    revision: str
    sha256: str | None
    size: int | None


def _sha256_in(hashes: Any) -> str | None:
    """The sha256 among uv's hash digests, in any of the shapes uv has written them."""
    items = hashes if isinstance(hashes, list) else [hashes]
    for item in items:
        if isinstance(item, str) and item.lower().startswith("sha256:"):
            candidate: Any = item[7:]
        elif isinstance(item, dict):
            lowered = {str(k).lower(): v for k, v in item.items()}
            candidate = lowered.get("sha256")
            if candidate is None and str(lowered.get("algorithm", "")).lower() == "sha256":
                candidate = lowered.get("digest")
        else:
            continue
        if isinstance(candidate, str) and _SHA256.fullmatch(candidate):
            return candidate.lower()
    return None


def _fields(value: Any, names: tuple[str, ...], what: str) -> dict[str, Any]:
    """A struct written as a msgpack array (positional) or map (named) as one dict."""
    if isinstance(value, list):
        if len(value) < len(names) - 2:  # the trailing fields came later; an older file may lack them
            raise PointerError(f"{what}: {len(value)} fields, expected {len(names)}")
        return dict(zip(names, value, strict=False))
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    raise PointerError(f"{what}: neither a msgpack array nor a map")


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise PointerError(f"{what}: {value!r:.60} is not an archive or revision id")
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


_WHEEL_FIELDS = ("id", "hashes", "filename", "version", "size")
_REVISION_FIELDS = ("id", "hashes", "size")


def _wheel(header: Any) -> WheelPointer:
    fields = _fields(header, _WHEEL_FIELDS, "wheel pointer")
    filename = fields.get("filename")
    if not isinstance(filename, str) or not filename.endswith(".whl"):
        raise PointerError(f"wheel pointer: {filename!r:.80} is not a wheel filename")
    version = fields.get("version", 0)
    return WheelPointer(archive=_check_id(fields.get("id"), "wheel pointer"), sha256=_sha256_in(fields.get("hashes")),
                        filename=filename, archive_version=version if isinstance(version, int) else 0,
                        size=_int_or_none(fields.get("size")))


def _revision(header: Any) -> RevisionPointer:
    fields = _fields(header, _REVISION_FIELDS, "revision pointer")
    return RevisionPointer(revision=_check_id(fields.get("id"), "revision pointer"),
                           sha256=_sha256_in(fields.get("hashes")), size=_int_or_none(fields.get("size")))


def _local(data: bytes, what: str) -> Any:
    """The data part of a `.rev` file: `[cache info, data]`."""
    value = unpack_msgpack(data)
    if not isinstance(value, list) or len(value) != 2:
        raise PointerError(f"{what}: not a [cache info, data] pair")
    return value[1]


def _pointer(name: str, data: bytes, what: str, shape: Callable[[Any], T]) -> T:
    if name.endswith(".http"):
        return shape(unpack_msgpack(http_header(data)))
    if name.endswith(".rev"):
        return shape(_local(data, f"{what} .rev pointer"))
    raise PointerError(f"{name}: not a {what} pointer")


def wheel_pointer(name: str, data: bytes) -> WheelPointer:
    """Parse a wheel group's `.http` or `.rev` file (`name` says which)."""
    return _pointer(name, data, "wheel", _wheel)


def revision_pointer(name: str, data: bytes) -> RevisionPointer:
    """Parse an sdist version folder's `revision.http` or `revision.rev`."""
    return _pointer(name, data, "revision", _revision)


def requires_dist(data: bytes) -> list[str]:
    """The Requires-Dist strings of uv's metadata file: a wheel group's `<key>.msgpack` (HTTP-cache
    framed when it came from the index) or a revision's `metadata.msgpack` (plain msgpack), both
    `[name, version, [requires-dist...], requires-python, extras, dynamic]` in uv 0.13.8."""
    try:
        value = unpack_msgpack(data)
    except PointerError:
        value = unpack_msgpack(http_header(data))
    if isinstance(value, dict):
        found = value.get("requires_dist", value.get("requires-dist"))
    elif isinstance(value, list) and len(value) > 2:
        found = value[2]
    else:
        raise PointerError("uv metadata: neither a msgpack array nor a map")
    return [r for r in found if isinstance(r, str)] if isinstance(found, list) else []
