"""Synthetic uv caches for the unit tests of ci_cache.tools.uv, in the shapes uv 0.13.8 writes.

The shapes were checked against a real cache built from the local index: `archive-v0/<id>/` unpacked
wheels; `wheels-v7/index/<hash>/<name>/<key>` groups of a relative symlink, `.http`, `.msgpack` and
`.lock`; `sdists-v10/index/<hash>/<name>/<version>/` with `revision.http` and a revision folder;
`simple-v27/index/<hash>/<name>.rkyv`; plus the buckets and files that must never travel (builds,
environments, interpreter, temp dirs, locks, root markers).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ci_cache import fsops
from ci_cache.tools.base import MergeRequest, MergeStats, SeedRequest, SeedStats
from ci_cache.tools.uv import UvTool

INDEX = "4136eb8a3736e71d"
WHEELS = f"wheels-v7/index/{INDEX}"
SDISTS = f"sdists-v10/index/{INDEX}"
SIMPLE = f"simple-v27/index/{INDEX}"
OLD = 1_600_000_000_000_000_000  # an mtime in the past, in ns


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    archive: str
    requires: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def key(self) -> str:
        return f"{self.version}-py3-none-any"


ALPHA = Pkg("demo-alpha", "1.0.0", "dBnyVKc0gGQcrWUa", ("demo-beta>=1.1", "Demo_Gamma ; extra == 'x'"))
BETA = Pkg("demo-beta", "1.2.0", "5QtKRzS_bUBNT8bH", ("demo-delta",))
GAMMA = Pkg("demo-gamma", "0.3.0", "_qg4DSXPMou6olDU")
DELTA = Pkg("demo-delta", "2.0.0", "wRfFoXcs89dk3Hln")
ZETA = Pkg("demo-zeta", "0.9.0", "q9nsNqWZ9Nb71nK6")  # nobody needs it
ETA_VERSION, ETA_REV, ETA_ARCHIVE = "1.0.0", "FY3KeYyCQtBgtm0N", "_ZSVeL4q5OSc0dvO"  # built from an sdist
ENV_ONLY = "EnvOnlyArchive01"  # a cached venv: only environments-v2 names it
URL_ARCHIVE = "UrlWheelArchive1"


def write(path: Path, data: str | bytes, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def make_archive(cache: Path, archive: str, name: str, version: str, requires: Iterable[str] = ()) -> Path:
    top = cache / "archive-v0" / archive
    module = name.replace("-", "_")
    write(top / module / "__init__.py", f"NAME = {name!r}\n")
    write(top / module / "core.py", f"# {name} {version}\n" + "x = 1\n" * 50)
    write(top / module / "_native.bin", hashlib.sha256(archive.encode()).digest() * 64)
    headers = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    headers += [f"Requires-Dist: {r}" for r in requires]
    # A body after the headers: a Requires-Dist line in the description must not count.
    write(top / f"{module}-{version}.dist-info" / "METADATA", "\n".join(headers) + "\n\nRequires-Dist: not-a-dep\n")
    write(top / f"{module}-{version}.dist-info" / "RECORD", f"{module}/__init__.py,,\n")
    return top


def make_wheel_group(cache: Path, pkg: Pkg, *, absolute: bool = False, windows_link: bool = False,
                     http: bytes | None = None) -> Path:
    """A `wheels-v7` group pointing at `archive-v0/<pkg.archive>`, and that archive."""
    make_archive(cache, pkg.archive, pkg.name, pkg.version, pkg.requires)
    folder = cache / WHEELS / pkg.name
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / pkg.key
    if windows_link:
        write(link, f"archive-v0\\{pkg.archive}")
    elif absolute:
        os.symlink(cache / "archive-v0" / pkg.archive, link)
    else:
        os.symlink(f"../../../../archive-v0/{pkg.archive}", link)
    write(folder / f"{pkg.key}.http", http or f"http-cache-policy {pkg.archive}".encode())
    write(folder / f"{pkg.key}.msgpack", f"msgpack {pkg.name} {pkg.version}")
    write(folder / f"{pkg.key}.lock", "")
    write(cache / SIMPLE / f"{pkg.name}.rkyv", f"rkyv index page of {pkg.name}", mtime_ns=OLD)
    return folder


def make_sdist_build(cache: Path, name: str, version: str, rev_id: str, archive: str, *,
                     windows_link: bool = False, pointer: bytes | None = None) -> Path:
    """An sdist built here: the version folder, its pointer and a revision with the built wheel, whose
    unpacked archive a link names. Returns the version folder."""
    module = name.replace("-", "_")
    version_dir = cache / SDISTS / name / version
    rev = version_dir / rev_id
    write(version_dir / "revision.http", pointer or f"revision pointer {rev_id}".encode())
    write(version_dir / ".lock", "")
    write(rev / "metadata.msgpack", f"msgpack {name}")
    write(rev / "src" / "PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    write(rev / "src" / module / "__init__.py", "")
    write(rev / f"{module}-{version}-py3-none-any.whl", b"PK\x03\x04 built wheel bytes")
    write(rev / f"{version}-py3-none-any.lock", "")
    link = rev / f"{module}-{version}-py3-none-any"
    if windows_link:
        write(link, f"archive-v0\\{archive}")
    else:
        os.symlink(f"../../../../../../archive-v0/{archive}", link)
    make_archive(cache, archive, name, version)
    write(cache / SIMPLE / f"{name}.rkyv", f"rkyv index page of {name}", mtime_ns=OLD)
    return version_dir


def msgpack_str(text: str) -> bytes:
    """`text` as a msgpack string, the way uv's pointers hold archive and revision ids."""
    data = text.encode()
    return (bytes([0xA0 | len(data)]) if len(data) < 32 else bytes([0xD9, len(data)])) + data


def make_shared(cache: Path) -> Path:
    """A warm shared cache with every kind of entry uv makes."""
    write(cache / "CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n")
    write(cache / ".gitignore", "*")
    write(cache / ".lock", "")
    for pkg in (ALPHA, BETA, GAMMA, DELTA, ZETA):
        make_wheel_group(cache, pkg)
    make_sdist_build(cache, "demo-eta", ETA_VERSION, ETA_REV, ETA_ARCHIVE)
    # A wheel from a direct URL: keyed by URL hash, not by name.
    url_folder = cache / "wheels-v7" / "url" / "9f8e7d6c5b4a3921" / "demo-url"
    url_folder.mkdir(parents=True)
    os.symlink(f"../../../../archive-v0/{URL_ARCHIVE}", url_folder / "1.0-py3-none-any")
    write(url_folder / "1.0-py3-none-any.http", f"http {URL_ARCHIVE}")
    make_archive(cache, URL_ARCHIVE, "demo-url", "1.0")
    # What must never travel.
    make_archive(cache, ENV_ONLY, "venv", "0")
    os.symlink(cache / "archive-v0" / ENV_ONLY, mkparent(cache / "environments-v2" / "hello-8b8d8853a364cdcc"))
    write(cache / "builds-v0" / ".tmpB1dX" / "setup.py", "")
    write(cache / "interpreter-v5" / "ee29edfd57359aa6" / "b6c7b271f5ee510b.msgpack", "interpreter info")
    write(cache / ".tmpXYZ123" / "half-extracted.py", "partial")
    write(cache / "archive-v0" / ".tmpQ9zLLc" / "partial.py", "partial")
    return cache


def mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under `root`: its kind and content (file hash, link text), for byte-identity checks."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", "")
            else:
                out[rel] = ("file", hashlib.sha256(full.read_bytes()).hexdigest() + f":{st.st_mode:o}")
    return out


@dataclass
class Caches:
    shared: Path
    job: Path
    manifest: Path
    tool: UvTool = field(default_factory=UvTool)

    def seed(self, packages: frozenset[str] | None = None, *, link: bool = True) -> SeedStats:
        return self.tool.seed(SeedRequest(shared=self.shared, job=self.job, link=link, packages=packages,
                                          manifest=self.manifest))

    def merge(self) -> MergeStats:
        return self.tool.merge(MergeRequest(job=self.job, shared=self.shared, manifest=self.manifest))


def same_file(a: Path, b: Path) -> bool:
    return os.stat(a).st_ino == os.stat(b).st_ino and os.stat(a).st_dev == os.stat(b).st_dev


def archive_files(cache: Path, archive: str) -> list[str]:
    return sorted(rel for rel, _e in fsops.walk_files(cache / "archive-v0" / archive))


def temp_entries(cache: Path) -> list[str]:
    return sorted(rel for rel in snapshot(cache) if any(p.startswith(fsops.TEMP_PREFIX) for p in rel.split("/")))
