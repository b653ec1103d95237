"""The realistic package set: real wheels downloaded once with pip, served as a PEP 503 index."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

# A web and test stack plus numpy and pandas: about 50 wheels once dependencies are in.
REALISTIC = (
    "fastapi",
    "uvicorn",
    "pydantic",
    "httpx",
    "requests",
    "flask",
    "sqlalchemy",
    "pytest",
    "pytest-asyncio",
    "hypothesis",
    "coverage",
    "numpy",
    "pandas",
    "rich",
    "click",
    "attrs",
    "jinja2",
    "pyyaml",
    "boto3",
    "python-multipart",
)
# `--requirements small`: a pure-Python slice of the same index, for a smoke run.
SMALL = ("flask", "requests", "rich", "pytest", "attrs", "httpx")

_MANIFEST = "bench-wheels.json"


def dev_home(env: Mapping[str, str]) -> Path:
    """Where developer tools and downloads live, outside the repo."""
    return Path(env.get("CI_CACHE_DEV_HOME") or Path.home() / ".cache" / "ci-cache-dev")


def interpreter_tag() -> str:
    """Wheels differ per interpreter and platform, so each gets its own download folder."""
    plat = re.sub(r"[^A-Za-z0-9]+", "_", sysconfig.get_platform())
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{plat}"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    return normalize(filename.split("-", 1)[0])


def _write(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _wheel_metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(name)
    raise ValueError(f"{wheel}: no .dist-info/METADATA inside")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _page(title: str, links: Sequence[str]) -> bytes:
    body = "\n".join(links)
    return (
        f'<!DOCTYPE html>\n<html>\n<head>\n<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    ).encode()


def build_simple_tree(root: Path) -> list[str]:
    """Write `root/simple` (PEP 503, with PEP 658 metadata files) over the wheels in `root/files`.

    Returns the wheel file names. Metadata files let uv resolve without fetching whole wheels, as it
    does against a real index.
    """
    files = root / "files"
    wheels = sorted(p for p in files.iterdir() if p.suffix == ".whl")
    projects: dict[str, list[str]] = {}
    for wheel in wheels:
        meta_path = wheel.with_name(wheel.name + ".metadata")
        if not meta_path.is_file():
            _write(meta_path, _wheel_metadata(wheel))
        meta = meta_path.read_bytes()
        digest = _sha256(wheel.read_bytes())
        attrs = f' data-dist-info-metadata="sha256={_sha256(meta)}" data-core-metadata="sha256={_sha256(meta)}"'
        href = html.escape(f"../../files/{wheel.name}#sha256={digest}")
        projects.setdefault(wheel_project(wheel.name), []).append(
            f'<a href="{href}"{attrs}>{html.escape(wheel.name)}</a><br/>'
        )
    for project, links in projects.items():
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        _write(root / "simple" / project / "index.html", _page(f"Links for {project}", links))
    index = [f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br/>' for p in sorted(projects)]
    _write(root / "simple" / "index.html", _page("Simple index", index))
    return [w.name for w in wheels]


def ensure_realistic(home: Path, requirements: Sequence[str] = REALISTIC) -> tuple[Path, list[str]]:
    """Download the realistic set once (binary wheels for this interpreter) and index it.

    Returns the index root and its wheel names. A later run with the same requirements reuses the
    download without touching the network.
    """
    root = home / "bench-wheels" / interpreter_tag()
    manifest = root / _MANIFEST
    files = root / "files"
    wanted = sorted(requirements)
    try:
        done = json.loads(manifest.read_text(encoding="utf-8"))
        complete = done.get("requirements") == wanted and all((files / f).is_file() for f in done["wheels"])
    except (OSError, ValueError, KeyError, TypeError):
        complete = False
    if not complete:
        files.mkdir(parents=True, exist_ok=True)
        print(
            f"bench: downloading {len(wanted)} requirements and their dependencies into {files}",
            file=sys.stderr,
        )
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--disable-pip-version-check"]
        subprocess.run([*cmd, "-q", "-d", str(files), *wanted], check=True)
    wheels = build_simple_tree(root)
    if not complete:
        text = json.dumps({"requirements": wanted, "wheels": wheels}, indent=1) + "\n"
        manifest.write_text(text, encoding="utf-8")
    return root, wheels


def write_requirements(path: Path, names: Sequence[str]) -> Path:
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def env_without(env: Mapping[str, str], prefixes: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(tuple(prefixes))}


def python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
