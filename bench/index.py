"""Serving an index for the bench: `ci_cache.localindex.IndexServer` with a listen backlog to match."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ci_cache import localindex

# uv opens up to 50 connections per process; 8 jobs at once overflow socketserver's default backlog
# of 5, and each dropped SYN costs the client 1, 3, 7... 31 s of retransmits: a straggler job, not a
# property of the strategy under test.
BACKLOG = 1024


def widen_backlog() -> None:
    server_cls = getattr(localindex, "_IndexHTTPServer", None)
    if server_cls is not None and getattr(server_cls, "request_queue_size", BACKLOG) < BACKLOG:
        server_cls.request_queue_size = BACKLOG


@contextmanager
def serve(root: Path, *, simple_max_age: int) -> Iterator[localindex.IndexServer]:
    widen_backlog()
    with localindex.IndexServer(root, simple_max_age=simple_max_age) as srv:
        yield srv
