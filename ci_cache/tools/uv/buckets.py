"""Which bucket versions the agent's uv uses, asked of uv itself: `uv cache prune` keeps only its own.

An empty cache cannot say which `wheels-vN` the local uv reads, and a tagged table of uv releases
would go stale. So ci-cache makes a throwaway cache holding empty `wheels-v0..v63` (and the same for
the other families), runs `uv cache prune` on it, and reads which survived. The answer is kept beside
the shared cache, keyed by the uv binary's path, size and mtime, so it costs one uv run per upgrade.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ci_cache import fsops, store
from ci_cache.tools.uv.layout import bucket_family, find_uv

FAMILIES = ("wheels", "sdists", "simple", "archive")
_PROBE_VERSIONS = 64
_TIMEOUT = 60.0


@dataclass(frozen=True)
class Buckets:
    """The bucket names of one uv version, e.g. wheels-v7, sdists-v10, simple-v27, archive-v0."""

    wheels: str
    sdists: str
    simple: str
    archive: str


def _binary_id(uv: str) -> str:
    st = os.stat(uv)
    return f"{os.path.abspath(uv)}|{st.st_size}|{st.st_mtime_ns}"


def probe(uv: str, env: Mapping[str, str]) -> Buckets | None:
    """Ask `uv` which buckets it keeps; None when it did not answer clearly (one survivor per family)."""
    with tempfile.TemporaryDirectory(prefix="ci-cache-uv-probe-") as tmp:
        cache = Path(tmp) / "cache"
        for family in FAMILIES:
            for version in range(_PROBE_VERSIONS):
                fsops.makedirs(cache / f"{family}-v{version}")
        run_env = {k: v for k, v in env.items() if not k.startswith("UV_")}
        run_env.update(UV_CACHE_DIR=str(cache), UV_NO_CONFIG="1", UV_NO_PROGRESS="1")
        try:
            proc = subprocess.run([uv, "cache", "prune"], env=run_env, capture_output=True, check=False,
                                  timeout=_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            return None
        kept: dict[str, list[str]] = {f: [] for f in FAMILIES}
        for name in os.listdir(cache):
            bucket_fam = bucket_family(name)
            if bucket_fam is not None and bucket_fam in kept:
                kept[bucket_fam].append(name)
    if any(len(names) != 1 for names in kept.values()):
        return None
    return Buckets(**{family: names[0] for family, names in kept.items()})


def current(cache: Path, env: Mapping[str, str]) -> Buckets | None:
    """The buckets of the uv on `env`'s PATH (remembered beside `cache`); None without a usable uv."""
    uv = find_uv(env)
    if uv is None:
        return None
    memo = store.beside(cache, "uv-buckets.json")
    key = _binary_id(uv)
    try:
        known = json.loads(memo.read_bytes())
        if known.get("uv") == key:
            return Buckets(**known["buckets"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    found = probe(uv, env)
    if found is not None:
        fsops.makedirs(memo.parent)
        fsops.write_atomic(memo, json.dumps({"uv": key, "buckets": asdict(found)}).encode())
    return found
