"""`build_index`: generate the distributions of a spec set into ``files/`` and index them in ``simple/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ci_cache_index.dists import build_sdist, build_wheel, metadata
from ci_cache_index.fsutil import write_if_changed
from ci_cache_index.simple import Listing, sha256_hex, write_simple_tree
from ci_cache_index.specs import PackageSpec


def _check(specs: Sequence[PackageSpec]) -> None:
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        key = (spec.project, spec.version)
        if key in seen:
            raise ValueError(f"duplicate package spec {spec.name}=={spec.version}")
        if not (spec.wheel or spec.sdist):
            raise ValueError(f"package spec {spec.name}=={spec.version} ships neither wheel nor sdist")
        seen.add(key)


def build_index(root: Path, specs: Sequence[PackageSpec]) -> Path:
    """Write distributions to ``root/files`` and a PEP 503 tree to ``root/simple``; returns ``root``.

    The index then lists exactly ``specs``: distributions and project pages from earlier builds that are
    no longer wanted are removed, identical files are left untouched. Wheels also get PEP 658 metadata
    files (``X.whl.metadata``) so uv resolves without fetching whole wheels.
    """
    root = Path(root)
    _check(specs)
    files_dir = root / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    listings: list[Listing] = []
    wanted: set[str] = set()
    for spec in sorted(specs, key=lambda s: (s.project, s.version)):
        dists: list[tuple[str, bytes]] = []
        if spec.wheel:
            dists.append((spec.wheel_name, build_wheel(spec)))
        if spec.sdist:
            dists.append((spec.sdist_name, build_sdist(spec)))
        for fname, data in dists:
            write_if_changed(files_dir / fname, data)
            wanted.add(fname)
            meta_sha = None
            if fname.endswith(".whl"):
                meta = metadata(spec)
                write_if_changed(files_dir / f"{fname}.metadata", meta)
                wanted.add(f"{fname}.metadata")
                meta_sha = sha256_hex(meta)
            listings.append(Listing(spec.project, fname, sha256_hex(data), meta_sha))
    write_simple_tree(root / "simple", listings)
    # Drop leftovers of earlier builds so the index lists exactly these specs.
    for stale in files_dir.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    return root
