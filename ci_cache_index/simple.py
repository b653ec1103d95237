"""PEP 503 project pages with PEP 658 metadata links, over generated or downloaded distributions."""

from __future__ import annotations

import hashlib
import html
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ci_cache_index.backend import normalize
from ci_cache_index.fsutil import write_if_changed


@dataclass(frozen=True)
class Listing:
    """One distribution file as its project page links it (from ``simple/<project>/`` to ``files/``)."""

    project: str  # PEP 503 normalised
    filename: str
    sha256: str
    metadata_sha256: str | None = None  # set when a PEP 658 ``<filename>.metadata`` file sits beside it

    def anchor(self) -> str:
        href = html.escape(f"../../files/{self.filename}#sha256={self.sha256}")
        attrs = ""
        if self.metadata_sha256 is not None:
            # Both spellings: data-dist-info-metadata (PEP 658) and data-core-metadata (PEP 714).
            attrs = f' data-dist-info-metadata="sha256={self.metadata_sha256}"'
            attrs += f' data-core-metadata="sha256={self.metadata_sha256}"'
        return f'<a href="{href}"{attrs}>{html.escape(self.filename)}</a><br/>'


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def page(title: str, links: Iterable[str]) -> bytes:
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body>\n</html>\n"
    ).encode()


def write_simple_tree(simple_dir: Path, listings: Iterable[Listing]) -> list[str]:
    """Write the root page and one page per project, in the listings' order; returns the projects.

    Project folders that no listing names any more are removed, so the tree lists exactly
    ``listings``; identical pages are left untouched.
    """
    projects: dict[str, list[str]] = {}
    for listing in listings:
        projects.setdefault(listing.project, []).append(listing.anchor())
    simple_dir.mkdir(parents=True, exist_ok=True)
    for project, links in projects.items():
        write_if_changed(simple_dir / project / "index.html", page(f"Links for {project}", links))
    root_links = (f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br/>' for p in sorted(projects))
    write_if_changed(simple_dir / "index.html", page("Simple index", root_links))
    for stale in simple_dir.iterdir():
        if stale.is_dir() and stale.name not in projects:
            shutil.rmtree(stale)
    return sorted(projects)


def wheel_project(filename: str) -> str:
    """The normalised project of a wheel file name, e.g. ``typing-extensions``."""
    return normalize(filename.split("-", 1)[0])


def wheel_metadata(wheel: Path) -> bytes:
    """The core metadata inside a wheel (its top-level ``*.dist-info/METADATA``)."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(name)
    raise ValueError(f"{wheel}: no .dist-info/METADATA inside")


def index_files(root: Path) -> list[str]:
    """Write ``root/simple`` over the wheels already in ``root/files`` (downloaded ones, say).

    Each wheel gets its PEP 658 metadata file, so uv resolves without fetching whole wheels, as it
    does against a real index. Returns the wheel file names.
    """
    wheels = sorted(p for p in (root / "files").iterdir() if p.suffix == ".whl")
    listings = []
    for wheel in wheels:
        meta_path = wheel.with_name(f"{wheel.name}.metadata")
        if not meta_path.is_file():
            write_if_changed(meta_path, wheel_metadata(wheel))
        listings.append(
            Listing(
                wheel_project(wheel.name),
                wheel.name,
                sha256_hex(wheel.read_bytes()),
                sha256_hex(meta_path.read_bytes()),
            )
        )
    write_simple_tree(root / "simple", listings)
    return [w.name for w in wheels]
