"""Serving an index for the bench: `ci_cache_index.IndexServer` on loopback or behind a network profile."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci_cache_index import IndexServer, NetworkProfile

# uv opens up to 50 connections per process; 8 jobs at once overflow socketserver's default backlog
# of 5, and each dropped SYN costs the client 1, 3, 7... 31 s of retransmits: a straggler job, not a
# property of the strategy under test. The server's backlog must be at least this (a unit test checks).
BACKLOG = 1024

# The default network profile: a CI agent reaching a public index through its CDN (docs/benchmarks.md,
# "The network profile", says where the figures come from). 30 ms is the middle of the 20-50 ms that
# CDN requests typically take; 12.5 MB/s (100 Mbit/s) is the agent's uplink, shared by every job on it,
# between the 3.5 MB/s and 50 MB/s that self-hosted and hosted runners were measured downloading at.
DEFAULT_LATENCY_MS = 30.0
DEFAULT_BANDWIDTH = 12_500_000


def default_profile() -> NetworkProfile:
    return NetworkProfile(latency=DEFAULT_LATENCY_MS / 1000, bandwidth=DEFAULT_BANDWIDTH)


@contextmanager
def serve(root: Path, *, simple_max_age: int, network: NetworkProfile | None = None) -> Iterator[IndexServer]:
    """Serve `root` on 127.0.0.1; `network` (None: plain loopback) slows every response to a profile."""
    with IndexServer(root, simple_max_age=simple_max_age, network=network) as srv:
        yield srv
