"""Serving an index for the bench: `ci_cache_index.IndexServer`, whose listen backlog must fit the bench."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci_cache_index import IndexServer

# uv opens up to 50 connections per process; 8 jobs at once overflow socketserver's default backlog
# of 5, and each dropped SYN costs the client 1, 3, 7... 31 s of retransmits: a straggler job, not a
# property of the strategy under test. The server's backlog must be at least this (a unit test checks).
BACKLOG = 1024


@contextmanager
def serve(root: Path, *, simple_max_age: int) -> Iterator[IndexServer]:
    with IndexServer(root, simple_max_age=simple_max_age) as srv:
        yield srv
