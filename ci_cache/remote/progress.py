"""Progress of a pull or push: a live line on a terminal, a line every few seconds in a CI log.

Nothing is shown for work that finishes within `quiet_for` seconds: a fast pull stays silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

# (label, items, bytes or None) -> a Progress, for the phases that move bytes.
ProgressFactory = Callable[[str, int, int | None], "Progress"]


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover - the loop always returns


class Progress:
    """Counts items and bytes; prints to `stream` (stderr) at a pace that suits a terminal or a log."""

    def __init__(self, label: str, *, total: int, total_bytes: int | None, stream: TextIO, tty: bool,
                 log_every: float = 5.0, quiet_for: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.failed = 0
        self.bytes = 0
        self._stream = stream
        self._tty = tty
        self._every = 0.1 if tty else log_every
        self._quiet_for = quiet_for
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._shown = False

    def line(self) -> str:
        elapsed = self._clock() - self._start
        size = human_bytes(self.bytes) + (f" of {human_bytes(self.total_bytes)}" if self.total_bytes else "")
        rate = f", {human_bytes(self.bytes / elapsed)}/s" if elapsed > 0 and self.bytes else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"ci-cache: {self.label}: {self.done}/{self.total} ({size}{rate}{failed}) {elapsed:.1f}s"

    def advance(self, *, items: int = 1, nbytes: int = 0, failed: bool = False) -> None:
        self.done += items
        self.bytes += nbytes
        self.failed += int(failed)
        now = self._clock()
        if now - self._start >= self._quiet_for and now - self._last >= self._every:
            self._emit()
            self._last = now

    def _emit(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K" + self.line())
        else:
            self._stream.write(self.line() + "\n")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """The final line, only if progress was shown (a terminal's live line then ends)."""
        if not self._shown:
            return
        if self._tty:
            self._stream.write("\r\x1b[K" + self.line() + "\n")
        else:
            self._stream.write(self.line() + "\n")
        self._stream.flush()


def on(stream: TextIO, *, quiet: bool = False) -> ProgressFactory | None:
    """Progress lines on `stream` (a terminal gets a live line); None when the user asked for quiet."""
    if quiet:
        return None
    tty = stream.isatty()

    def make(label: str, total: int, total_bytes: int | None) -> Progress:
        return Progress(label, total=total, total_bytes=total_bytes, stream=stream, tty=tty)

    return make
