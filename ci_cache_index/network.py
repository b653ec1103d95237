"""An optional network profile for the index server: per-request latency and a shared bandwidth cap.

Loopback answers in microseconds at gigabytes per second; a CI agent reaching a public index does not.
The profile puts two costs back, and nothing else (no loss, no TCP slow start, no handshake cost):

- ``latency``: seconds added before each response, one round trip per request. Requests on different
  connections wait at the same time, as they would on a real network.
- ``bandwidth``: bytes per second for everything the server sends (headers and bodies), **shared by
  all connections at once**. A CI agent's bottleneck is its own uplink, which every uv process on the
  agent shares; a per-connection cap would let uv's parallel downloads (up to 50 connections per
  process) and N concurrent jobs multiply it, and reward whichever strategy opens the most
  connections. One shared link makes N jobs compete for the same bytes, as they do on an agent.

Both only ever make a response slower, so a test can assert lower bounds without racing the clock.
"""

from __future__ import annotations

import io
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKMG]?)(?:B|B/s)?")
_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3}


@dataclass(frozen=True)
class NetworkProfile:
    """Latency (seconds per request) and bandwidth (bytes/s, shared); the default is plain loopback."""

    latency: float = 0.0
    bandwidth: int | None = None

    def __post_init__(self) -> None:
        if not self.latency >= 0:  # also refuses NaN
            raise ValueError(f"network latency must be >= 0 seconds, not {self.latency!r}")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError(f"network bandwidth must be > 0 bytes/s (or None for no cap), not {self.bandwidth!r}")

    @property
    def active(self) -> bool:
        return self.latency > 0 or self.bandwidth is not None

    def describe(self) -> str:
        """E.g. ``latency 30 ms, bandwidth 12,500,000 B/s shared`` or ``loopback``."""
        parts = []
        if self.latency > 0:
            parts.append(f"latency {self.latency * 1000:g} ms")
        if self.bandwidth is not None:
            parts.append(f"bandwidth {self.bandwidth:,} B/s shared")
        return ", ".join(parts) or "loopback"


def parse_bandwidth(text: str) -> int:
    """``12.5M`` -> 12,500,000 bytes/s; decimal units k/K, M, G, an optional ``B`` or ``B/s``."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bandwidth {text!r} is not a number of bytes/s such as 500k, 12.5M or 1G")
    value = int(float(match["number"]) * _UNITS[match["unit"]])
    if value <= 0:
        raise ValueError(f"bandwidth {text!r} must be more than 0 bytes/s")
    return value


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (never returns early)."""
    while (left := deadline - time.perf_counter()) > 0:
        time.sleep(left)


class Link:
    """One link of ``rate`` bytes/s that every connection's writes take turns on.

    A write of n bytes books the next n/rate seconds of the link and is sent when its booking ends, so
    B bytes take at least B/rate seconds however many connections share the link. Idle time earns no
    credit: a link does not send faster after a pause.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        # Chunks of about 10 ms of the link: smooth interleaving without a wakeup per packet.
        self.chunk = min(max(rate // 100, 4096), 256 * 1024)
        self._lock = threading.Lock()
        self._free_at = 0.0

    def book(self, nbytes: int) -> float:
        """Reserve the link for ``nbytes``; returns the perf_counter time at which they have gone out."""
        with self._lock:
            start = max(time.perf_counter(), self._free_at)
            self._free_at = start + nbytes / self.rate
            return self._free_at


class ThrottledWriter(io.BufferedIOBase):
    """A connection's output stream that sends through a shared `Link`."""

    def __init__(self, raw: io.BufferedIOBase, link: Link) -> None:
        super().__init__()
        self._raw = raw
        self._link = link

    def writable(self) -> bool:
        return True

    def write(self, buffer: ReadableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        for offset in range(0, len(view), self._link.chunk):
            chunk = view[offset : offset + self._link.chunk]
            sleep_until(self._link.book(len(chunk)))
            self._raw.write(chunk)
        return len(view)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # flushes first
            finally:
                self._raw.close()
