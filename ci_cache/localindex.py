"""Self-contained local package index (generated wheels/sdists + PEP 503 server) for demo, tests, benchmarks.

Everything is generated deterministically from `PackageSpec`s, so repeated builds are byte-identical and
nothing needs the network: sdists carry an in-tree PEP 517 backend, so uv builds them without setuptools.

    python -m ci_cache.localindex build DIR [--demo] [--scale N --files-per-package M]
    python -m ci_cache.localindex serve DIR [--port 0] [--port-file F] [--access-log F]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html
import inspect
import io
import os
import re
import shutil
import signal
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

_DESCRIPTION = "Generate and serve a local package index (wheels, offline-buildable sdists, PEP 503)."
# Zip cannot store dates before 1980; a fixed stamp makes builds byte-identical.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 315532800  # 1980-01-01, same instant as the zip stamp


@dataclass(frozen=True)
class PackageSpec:
    """One generated distribution: a pure-Python wheel and/or an sdist of the same package."""

    name: str
    version: str = "1.0.0"
    deps: tuple[str, ...] = ()  # PEP 508 requirement strings -> Requires-Dist
    files: int = 3  # modules in the package besides __init__.py
    size: int = 1024  # approximate bytes per module
    sdist: bool = False
    wheel: bool = True
    ext: bool = False  # also ship a binary payload file (stands in for a native extension's bytes)

    @property
    def project(self) -> str:
        """PEP 503 normalised name, e.g. ``demo-alpha``."""
        return normalize(self.name)

    @property
    def dist(self) -> str:
        """Name as used in wheel/sdist file names and the import name, e.g. ``demo_alpha``."""
        return self.project.replace("-", "_")

    @property
    def wheel_name(self) -> str:
        return f"{self.dist}-{self.version}-py3-none-any.whl"

    @property
    def sdist_name(self) -> str:
        return f"{self.dist}-{self.version}.tar.gz"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------------------------------------------------
# Archive writers. Their source is also copied verbatim into each sdist's in-tree backend (see
# _backend_source), so they may only use base64, gzip, hashlib, io, tarfile, zipfile, _ZIP_DATE, _TAR_MTIME.


def _zip_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is honoured on every platform
            info.external_attr = 0o100644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _wheel_bytes(dist: str, version: str, files: list[tuple[str, bytes]], metadata: bytes) -> bytes:
    """A PEP 427 wheel of ``files`` (package-relative paths) plus dist-info with a hashed RECORD."""
    info = f"{dist}-{version}.dist-info"
    wheel_file = (
        b"Wheel-Version: 1.0\nGenerator: ci-cache-localindex\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries = [*sorted(files), (f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel_file)]
    record = []
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}\n")
    record.append(f"{info}/RECORD,,\n")
    entries.append((f"{info}/RECORD", "".join(record).encode()))
    return _zip_bytes(entries)


def _tar_gz_bytes(base: str, files: list[tuple[str, bytes]]) -> bytes:
    """A reproducible .tar.gz of ``files`` under the top folder ``base``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = sorted({"/".join(p.split("/")[:i]) for p, _ in files for i in range(1, p.count("/") + 1)})
        for d in ["", *dirs]:
            ti = tarfile.TarInfo(f"{base}/{d}".rstrip("/"))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, _TAR_MTIME
            tf.addfile(ti)
        for path, data in sorted(files):
            ti = tarfile.TarInfo(f"{base}/{path}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, _TAR_MTIME
            tf.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Package content


def _payload(seed: str, size: int) -> list[str]:
    """Deterministic pseudo-random hex lines totalling about ``size`` characters."""
    lines: list[str] = []
    block = hashlib.sha256(seed.encode()).digest()
    remaining = max(size, 64)
    while remaining > 0:
        block = hashlib.sha256(block).digest()
        lines.append(block.hex())  # 64 hex chars
        remaining -= 64 + 7  # the quotes, indent and newline around each line
    return lines


def _module_files(spec: PackageSpec) -> list[tuple[str, bytes]]:
    """Package-relative files of the importable top-level package (``demo_alpha/...``)."""
    mod = spec.dist
    names = [f"mod_{i}" for i in range(spec.files)]
    init = (
        f'"""{spec.name} {spec.version}: generated by ci_cache.localindex."""\n\n'
        f'__version__ = "{spec.version}"\n'
        f"MODULES = {tuple(names)!r}\n"
    )
    out = [(f"{mod}/__init__.py", init.encode())]
    for i, name in enumerate(names):
        body = "".join(
            f'    "{line}"\n' for line in _payload(f"{spec.project}-{spec.version}-{i}", spec.size)
        )
        src = f'"""Module {i} of {spec.name} {spec.version}."""\n\nINDEX = {i}\nDATA = (\n{body})\n'
        out.append((f"{mod}/{name}.py", src.encode()))
    if spec.ext:
        blob = b"".join(
            hashlib.sha256(f"{spec.project}-{spec.version}-ext-{j}".encode()).digest()
            for j in range(max(spec.size, 32) // 32)
        )
        out.append((f"{mod}/_native.bin", blob))
    return out


def _metadata(spec: PackageSpec) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {spec.name}",
        f"Version: {spec.version}",
        f"Summary: Generated test package {spec.name}",
        *(f"Requires-Dist: {dep}" for dep in spec.deps),
    ]
    return ("\n".join(lines) + "\n").encode()


def build_wheel(spec: PackageSpec) -> bytes:
    return _wheel_bytes(spec.dist, spec.version, _module_files(spec), _metadata(spec))


def _pyproject(spec: PackageSpec) -> bytes:
    deps = ", ".join(f'"{d}"' for d in spec.deps)
    return (
        "[build-system]\n"
        "requires = []\n"
        'build-backend = "backend"\n'
        'backend-path = ["."]\n\n'
        "[project]\n"
        f'name = "{spec.name}"\n'
        f'version = "{spec.version}"\n'
        f"dependencies = [{deps}]\n"
    ).encode()


_BACKEND_TAIL = """

def _read(name: str) -> bytes:
    with open(name, "rb") as f:
        return f.read()


def _package_files() -> list[tuple[str, bytes]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(MODULE):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if not fn.endswith((".pyc", ".pyo")):
                path = os.path.join(dirpath, fn)
                out.append((path.replace(os.sep, "/"), _read(path)))
    return out


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: object = None) -> str:
    info = f"{DIST}-{VERSION}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    with open(os.path.join(metadata_directory, info, "METADATA"), "wb") as f:
        f.write(_read("PKG-INFO"))
    return info


def build_wheel(
    wheel_directory: str, config_settings: object = None, metadata_directory: object = None
) -> str:
    name = f"{DIST}-{VERSION}-py3-none-any.whl"
    with open(os.path.join(wheel_directory, name), "wb") as f:
        f.write(_wheel_bytes(DIST, VERSION, _package_files(), _read("PKG-INFO")))
    return name


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    name = f"{DIST}-{VERSION}.tar.gz"
    files = [(n, _read(n)) for n in ("PKG-INFO", "pyproject.toml", "backend.py")] + _package_files()
    with open(os.path.join(sdist_directory, name), "wb") as f:
        f.write(_tar_gz_bytes(f"{DIST}-{VERSION}", files))
    return name
"""


def _backend_source(spec: PackageSpec) -> bytes:
    head = (
        '"""In-tree PEP 517 backend generated by ci_cache.localindex: pure wheels, no dependencies."""\n\n'
        "from __future__ import annotations\n\n"
        "import base64\nimport gzip\nimport hashlib\nimport io\nimport os\nimport tarfile\nimport zipfile\n\n"
        f"DIST = {spec.dist!r}\nVERSION = {spec.version!r}\nMODULE = {spec.dist!r}\n"
        f"_ZIP_DATE = {_ZIP_DATE!r}\n_TAR_MTIME = {_TAR_MTIME!r}\n\n\n"
    )
    writers = "\n\n".join(inspect.getsource(f) for f in (_zip_bytes, _wheel_bytes, _tar_gz_bytes))
    return (head + writers + _BACKEND_TAIL).encode()


def build_sdist(spec: PackageSpec) -> bytes:
    files = [
        ("PKG-INFO", _metadata(spec)),
        ("pyproject.toml", _pyproject(spec)),
        ("backend.py", _backend_source(spec)),
        *_module_files(spec),
    ]
    return _tar_gz_bytes(f"{spec.dist}-{spec.version}", files)


# ---------------------------------------------------------------------------------------------------------
# Index


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write via temp file + rename, but leave an identical file (and its mtime) alone."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _page(title: str, links: Iterable[str]) -> bytes:
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body>\n</html>\n"
    ).encode()


def build_index(root: Path, specs: Sequence[PackageSpec]) -> Path:
    """Write distributions to ``root/files`` and a PEP 503 tree to ``root/simple``; returns ``root``.

    The index then lists exactly ``specs``: distributions and project pages from earlier builds that are
    no longer wanted are removed, identical files are left untouched. Wheels also get PEP 658 metadata
    files (``X.whl.metadata``) so uv resolves without fetching whole wheels.
    """
    root = Path(root)
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        key = (spec.project, spec.version)
        if key in seen:
            raise ValueError(f"duplicate package spec {spec.name}=={spec.version}")
        if not (spec.wheel or spec.sdist):
            raise ValueError(f"package spec {spec.name}=={spec.version} ships neither wheel nor sdist")
        seen.add(key)

    files_dir, simple_dir = root / "files", root / "simple"
    files_dir.mkdir(parents=True, exist_ok=True)
    simple_dir.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    wanted: set[str] = set()
    for spec in sorted(specs, key=lambda s: (s.project, s.version)):
        links = projects.setdefault(spec.project, [])
        dists: list[tuple[str, bytes]] = []
        if spec.wheel:
            dists.append((spec.wheel_name, build_wheel(spec)))
        if spec.sdist:
            dists.append((spec.sdist_name, build_sdist(spec)))
        for fname, data in dists:
            _write_if_changed(files_dir / fname, data)
            wanted.add(fname)
            href = html.escape(f"../../files/{fname}#sha256={_sha256(data)}")
            attrs = ""
            if fname.endswith(".whl"):
                meta = _metadata(spec)
                _write_if_changed(files_dir / f"{fname}.metadata", meta)
                wanted.add(f"{fname}.metadata")
                attrs = f' data-dist-info-metadata="sha256={_sha256(meta)}"'
                attrs += f' data-core-metadata="sha256={_sha256(meta)}"'
            links.append(f'<a href="{href}"{attrs}>{html.escape(fname)}</a><br/>')

    for project, links in projects.items():
        _write_if_changed(simple_dir / project / "index.html", _page(f"Links for {project}", links))
    root_links = (f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br/>' for p in sorted(projects))
    _write_if_changed(simple_dir / "index.html", _page("Simple index", root_links))

    # Drop leftovers of earlier builds so the index lists exactly these specs.
    for stale in files_dir.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for stale in simple_dir.iterdir():
        if stale.is_dir() and stale.name not in projects:
            shutil.rmtree(stale)
    return root


# ---------------------------------------------------------------------------------------------------------
# Spec sets


def demo_specs() -> list[PackageSpec]:
    """Eight packages in a small dependency graph; ``demo-eta`` is sdist-only, ``demo-theta`` ships both."""
    return [
        PackageSpec("demo-alpha", "1.0.0", deps=("demo-beta>=1.1", "demo-gamma")),
        PackageSpec("demo-beta", "1.0.0", deps=("demo-delta",)),
        PackageSpec("demo-beta", "1.2.0", deps=("demo-delta>=2",)),
        PackageSpec("demo-gamma", "0.3.0", deps=("demo-delta", "demo-epsilon")),
        PackageSpec("demo-delta", "2.0.0"),
        PackageSpec("demo-epsilon", "1.0.0", deps=("demo-zeta",), files=5),
        PackageSpec("demo-zeta", "0.9.0", ext=True),
        PackageSpec("demo-eta", "1.0.0", deps=("demo-theta",), sdist=True, wheel=False),
        PackageSpec("demo-theta", "1.1.0", sdist=True),
    ]


def scale_specs(n_packages: int, files_per_package: int, size: int = 1024) -> list[PackageSpec]:
    """``scale-pkg-NNNN`` packages without dependencies, for benchmarks that need big caches."""
    return [
        PackageSpec(f"scale-pkg-{i:04d}", "1.0.0", files=files_per_package, size=size)
        for i in range(n_packages)
    ]


# ---------------------------------------------------------------------------------------------------------
# Server


class _Handler(SimpleHTTPRequestHandler):
    server: _IndexHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real indexes do

    def translate_path(self, path: str) -> str:
        # Serve a folder's index.html directly, so /simple/x and /simple/x/ both answer 200 (no redirect).
        fs_path = super().translate_path(path)
        index = os.path.join(fs_path, "index.html")
        return index if os.path.isdir(fs_path) and os.path.isfile(index) else fs_path

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def end_headers(self) -> None:
        # Cache headers as PyPI sends them: distributions are immutable, project pages expire after
        # `simple_max_age` seconds (0 makes uv revalidate them on every run, with If-Modified-Since).
        if getattr(self, "_status", 0) in (200, 304):
            if urlsplit(self.path).path.startswith("/files/"):
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
            else:
                age = self.server.owner.simple_max_age
                self.send_header(
                    "Cache-Control", f"max-age={age}, public" if age else "max-age=0, must-revalidate"
                )
        super().end_headers()

    def do_GET(self) -> None:
        self.server.owner._record(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server.owner._record(self.path)
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: requests are recorded in IndexServer.requests / the access log


class _IndexHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections when 8 uv processes start at once.
    request_queue_size = 1024
    owner: IndexServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-response are routine; don't spray tracebacks on stderr


class IndexServer:
    """Serve ``root`` (as built by `build_index`) on 127.0.0.1 from a daemon thread."""

    def __init__(
        self, root: Path, *, access_log: Path | None = None, port: int = 0, simple_max_age: int = 600
    ) -> None:
        self.root = Path(root)
        self.simple_max_age = simple_max_age
        self.access_log = access_log
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[str] = []
        self._httpd: _IndexHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("IndexServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The simple-index URL, e.g. ``http://127.0.0.1:PORT/simple``."""
        return f"http://127.0.0.1:{self.port}/simple"

    @property
    def requests(self) -> list[str]:
        """Paths requested so far (URL-decoded, without query), in order; a snapshot copy."""
        with self._lock:
            return list(self._requests)

    def file_downloads(self) -> list[str]:
        """Requested paths under ``/files/`` (distributions and their .metadata files)."""
        return [p for p in self.requests if p.startswith("/files/")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, raw_path: str) -> None:
        path = unquote(urlsplit(raw_path).path)
        with self._lock:
            self._requests.append(path)
            if self.access_log is not None:
                with open(self.access_log, "a", encoding="utf-8") as f:
                    f.write(path + "\n")

    def start(self) -> IndexServer:
        if self._httpd is not None:
            return self
        root = str(self.root)

        class Handler(_Handler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=root, **kwargs)

        httpd = _IndexHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="ci-cache-index", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------
# CLI


def _cmd_build(args: argparse.Namespace) -> int:
    specs: list[PackageSpec] = []
    if args.demo or args.scale is None:
        specs += demo_specs()
    if args.scale is not None:
        specs += scale_specs(args.scale, args.files_per_package)
    root = build_index(Path(args.dir), specs)
    print(f"built {len(specs)} package specs into {root / 'simple'}", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not (root / "simple").is_dir():
        print(f"error: {root / 'simple'} does not exist; run `build {root}` first", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGBREAK"):  # Windows: what CTRL_BREAK_EVENT delivers to a console process group
        signal.signal(signal.SIGBREAK, on_signal)
    access_log = Path(args.access_log) if args.access_log else None
    with IndexServer(root, access_log=access_log, port=args.port, simple_max_age=args.simple_max_age) as srv:
        if args.port_file:
            _write_if_changed(Path(args.port_file), f"{srv.port}\n".encode())
        print(srv.url, flush=True)
        while not stop.wait(0.5):  # a timed wait keeps Ctrl-C deliverable on Windows
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ci_cache.localindex", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="generate packages and a PEP 503 index under DIR")
    build.add_argument("dir")
    build.add_argument("--demo", action="store_true", help="the demo package set (default without --scale)")
    build.add_argument("--scale", type=int, metavar="N", help="N generated scale-pkg-NNNN packages")
    build.add_argument("--files-per-package", type=int, default=10, metavar="M")
    build.set_defaults(func=_cmd_build)
    serve = sub.add_parser("serve", help="serve DIR on 127.0.0.1 until SIGTERM/SIGINT")
    serve.add_argument("dir")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--port-file", help="write the port here once listening")
    serve.add_argument("--access-log", help="append each requested path to this file")
    serve.add_argument(
        "--simple-max-age", type=int, default=600, metavar="S", help="Cache-Control max-age of /simple pages"
    )
    serve.set_defaults(func=_cmd_serve)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
