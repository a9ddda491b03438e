"""Coalescing: calls from concurrent tasks of one process handled together, a batch at a time.

Whatever arrives while a batch is being handled goes into the next one, so under load one database round
trip (or one transaction) serves many callers, while a lone call is handled at once, with no timer.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`handle` takes a batch of items and returns, for each in order, its result or the error to raise to
    its caller; at most `concurrency` batches are handled at once."""

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[list[R | BaseException]]],
        concurrency: int = 2,
        max_batch: int = 256,
    ) -> None:
        self.handle = handle
        self.concurrency = concurrency
        self.max_batch = max_batch
        self._pending: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._handlers = 0  # counted by the handlers themselves: one that finds nothing left stops at once
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._handlers < self.concurrency:
            self._handlers += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # A caller that gives up does not take its item out of a batch that may already be under way.
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
                try:
                    outcomes = await self.handle([item for item, _ in batch])
                except Exception as error:
                    outcomes = [error] * len(batch)
                except BaseException:  # this handler is cancelled (shutdown): its callers must not wait forever
                    for _, done in [*batch, *self._pending]:
                        done.cancel()
                    self._pending.clear()
                    raise
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if done.done():
                        continue
                    if isinstance(outcome, BaseException):
                        done.set_exception(outcome)
                    else:
                        done.set_result(outcome)
        finally:
            self._handlers -= 1
