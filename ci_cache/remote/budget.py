"""A time budget (deadline) that bounds a whole pull or push, so a dead endpoint cannot stall a job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ci_cache.errors import RemoteError

T = TypeVar("T")


class Budget:
    """Seconds left until a fixed deadline on the monotonic clock; `None` seconds means no deadline."""

    def __init__(self, seconds: float | None, *, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.what = what
        self._clock = clock
        self._start = clock()

    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - (self._clock() - self._start))

    def elapsed(self) -> float:
        return self._clock() - self._start

    @property
    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def exceeded(self, where: str) -> RemoteError:
        return RemoteError(f"{self.what} at {where} did not finish within its {self.seconds:g} s budget",
                           kind="timeout", hint="the remote is slow or unreachable; the job goes on with what it "
                           "has (raise remote.pull_budget or remote.push_budget if the link is just slow)")

    async def bound(self, work: Awaitable[T], where: str) -> T:
        """Await `work`, cancelling it when the budget runs out."""
        left = self.remaining()
        if left is not None and left <= 0:
            if asyncio.iscoroutine(work):
                work.close()
            raise self.exceeded(where)
        try:
            return await asyncio.wait_for(work, left)
        except TimeoutError:
            raise self.exceeded(where) from None


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one batch of remote work from synchronous code (each CLI command runs at most a few)."""
    return asyncio.run(work())
