"""Many transfers at once, bounded in number and in time: each item ends as a result or a RemoteError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ci_cache.errors import RemoteError
from ci_cache.remote.budget import Budget
from ci_cache.remote.progress import Progress

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    """What became of one item: its result, or the error that stopped it."""

    item: T
    result: R | None = None
    error: RemoteError | None = None
    finished: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Batch(Generic[T, R]):
    outcomes: list[Outcome[T, R]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Outcome[T, R]]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def succeeded(self) -> list[Outcome[T, R]]:
        return [o for o in self.outcomes if o.ok]


async def run_all(
    items: Sequence[T],
    work: Callable[[T], Awaitable[R]],
    *,
    concurrency: int,
    budget: Budget,
    where: str,
    progress: Progress | None = None,
    size_of: Callable[[T, R], int] | None = None,
) -> Batch[T, R]:
    """Run `work` on every item, at most `concurrency` at once, all within `budget`.

    One item's failure does not stop the others. When the budget runs out, the items still running are
    cancelled and every unfinished item gets a timeout error; what finished stays finished.
    """
    outcomes = [Outcome[T, R](item) for item in items]
    gate = asyncio.Semaphore(concurrency)

    async def one(outcome: Outcome[T, R]) -> None:
        async with gate:
            if budget.expired:
                outcome.error = budget.exceeded(where)
                outcome.finished = True
                return
            try:
                outcome.result = await work(outcome.item)
            except RemoteError as exc:
                outcome.error = exc
            outcome.finished = True
        if progress is not None:
            nbytes = size_of(outcome.item, outcome.result) if size_of and outcome.ok and outcome.result is not None \
                else 0
            progress.advance(nbytes=nbytes, failed=not outcome.ok)

    tasks = [asyncio.ensure_future(one(o)) for o in outcomes]
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=budget.remaining())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Anything but a RemoteError is a local problem (a full disk) or a bug: never hide it.
        local = next((t.exception() for t in done if not t.cancelled() and t.exception() is not None), None)
        if local is not None:
            raise local
    for outcome in outcomes:
        if not outcome.finished:
            outcome.error = budget.exceeded(where)
            outcome.finished = True
    if progress is not None:
        progress.finish()
    return Batch(outcomes, budget.elapsed())

