"""The realistic package set: real wheels downloaded once with pip, indexed by `ci_cache_index`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci_cache_index import index_files

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
    wheels = index_files(root)
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
