"""In-tree PEP 517 backend of the generated sdists, and the reproducible wheel/sdist writers it shares.

Each generated sdist ships this file's bytes as ``backend.py`` (``build-backend = "backend"``,
``backend-path = ["."]``), so uv builds it offline without setuptools. It therefore imports only the
standard library, and the index builder imports its writers from here instead of keeping a copy.
The hooks read the name and version from the tree's PKG-INFO and rebuild byte for byte what the index
builder wrote.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import re
import tarfile
import zipfile
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only in annotations: the backend must also load on whatever Python uv builds with
    from collections.abc import Mapping, Sequence

    ConfigSettings = Mapping[str, Any] | None
    Files = Sequence[tuple[str, bytes]]  # (archive-relative path with "/", content)

# Zip cannot store dates before 1980; a fixed stamp makes builds byte-identical.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01, the same instant as the zip stamp
WHEEL_TAG = "py3-none-any"
# What an sdist holds besides the package itself.
SDIST_EXTRAS = ("PKG-INFO", "pyproject.toml", "backend.py")


# ---------------------------------------------------------------------------------------------------------
# Names


def normalize(name: str) -> str:
    """PEP 503 normalised project name, e.g. ``demo-alpha`` for ``Demo_Alpha``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name: str) -> str:
    """The name in wheel/sdist file names and the import name, e.g. ``demo_alpha``."""
    return normalize(name).replace("-", "_")


def wheel_filename(dist: str, version: str) -> str:
    return f"{dist}-{version}-{WHEEL_TAG}.whl"


def sdist_filename(dist: str, version: str) -> str:
    return f"{dist}-{version}.tar.gz"


# ---------------------------------------------------------------------------------------------------------
# Archive writers


def zip_bytes(entries: Files) -> bytes:
    """A zip of ``entries`` in the given order, with fixed dates and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured on every platform
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def wheel_bytes(dist: str, version: str, files: Files, metadata: bytes) -> bytes:
    """A PEP 427 wheel of ``files`` (package-relative paths) plus dist-info with a hashed RECORD."""
    info = f"{dist}-{version}.dist-info"
    wheel_file = (f"Wheel-Version: 1.0\nGenerator: ci-cache-index\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n").encode()
    entries = [*sorted(files), (f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel_file)]
    record = []
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}\n")
    record.append(f"{info}/RECORD,,\n")
    entries.append((f"{info}/RECORD", "".join(record).encode()))
    return zip_bytes(entries)


def tar_gz_bytes(base: str, files: Files) -> bytes:
    """A reproducible .tar.gz of ``files`` under the top folder ``base``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({"/".join(p.split("/")[:i]) for p, _ in files for i in range(1, p.count("/") + 1)})
        for d in ["", *dirs]:
            ti = tarfile.TarInfo(f"{base}/{d}".rstrip("/"))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, TAR_MTIME
            tf.addfile(ti)
        for path, data in sorted(files):
            ti = tarfile.TarInfo(f"{base}/{path}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, TAR_MTIME
            tf.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# PEP 517 hooks (run with the sdist's unpacked tree as the working directory)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _project() -> tuple[str, str]:
    """``(dist, version)`` from the tree's PKG-INFO."""
    headers = BytesHeaderParser().parsebytes(_read("PKG-INFO"))
    name, version = headers["Name"], headers["Version"]
    if not name or not version:
        raise ValueError("PKG-INFO names no Name or Version: this tree was not made by ci_cache_index")
    return dist_name(str(name)), str(version)


def _package_files(dist: str) -> list[tuple[str, bytes]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(dist):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if not fn.endswith((".pyc", ".pyo")):
                path = os.path.join(dirpath, fn)
                out.append((path.replace(os.sep, "/"), _read(path)))
    return out


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: ConfigSettings = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: ConfigSettings = None) -> str:
    dist, version = _project()
    info = f"{dist}-{version}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "wb") as f:
        f.write(_read("PKG-INFO"))
    return info


def build_wheel(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    dist, version = _project()
    name = wheel_filename(dist, version)
    with open(os.path.join(wheel_directory, name), "wb") as f:
        f.write(wheel_bytes(dist, version, _package_files(dist), _read("PKG-INFO")))
    return name


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    dist, version = _project()
    name = sdist_filename(dist, version)
    files = [(n, _read(n)) for n in SDIST_EXTRAS] + _package_files(dist)
    with open(os.path.join(sdist_directory, name), "wb") as f:
        f.write(tar_gz_bytes(f"{dist}-{version}", files))
    return name
