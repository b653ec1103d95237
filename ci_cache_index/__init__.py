"""A self-contained local package index (generated wheels/sdists + PEP 503 server) for demo, tests, bench.

Everything is generated deterministically from `PackageSpec`s, so repeated builds are byte-identical and
nothing needs the network: sdists carry an in-tree PEP 517 backend (`ci_cache_index.backend`), so uv
builds them without setuptools. The server can play a slower network (`NetworkProfile`).

    python -m ci_cache_index build DIR [--demo] [--scale N --files-per-package M]
    python -m ci_cache_index serve DIR [--port 0] [--port-file F] [--access-log F]
                                       [--latency-ms MS] [--bandwidth RATE]

It imports nothing from ``ci_cache``: ci-cache's own code only uses it to run ``ci-cache demo``.
"""

from ci_cache_index.backend import normalize
from ci_cache_index.build import build_index
from ci_cache_index.dists import build_sdist, build_wheel
from ci_cache_index.network import NetworkProfile
from ci_cache_index.server import IndexServer
from ci_cache_index.simple import index_files
from ci_cache_index.specs import PackageSpec, demo_specs, scale_specs

__all__ = [
    "IndexServer",
    "NetworkProfile",
    "PackageSpec",
    "build_index",
    "build_sdist",
    "build_wheel",
    "demo_specs",
    "index_files",
    "normalize",
    "scale_specs",
]
