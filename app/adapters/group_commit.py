"""Group commit: the writes of concurrent callers in one process share a transaction.

Each caller hands over its events and outbox rows and waits until they are committed, so under load one
transaction carries many writes (its round trips and its commit paid once). When a shared transaction fails
(a conflicting append, say), each of its writes is committed alone, so every caller gets its own outcome and
no write is held back by another.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from app.adapters.coalesce import Coalescer
from app.observability import record as observed


class Batch(Protocol):
    """What a transaction takes a write's parts with (the store's UnitOfWork)."""

    async def append(self, events: Sequence[Any]) -> None: ...

    async def enqueue(self, *messages: Any) -> None: ...


Transaction = Callable[[], AbstractAsyncContextManager[Batch]]


@dataclass(frozen=True, slots=True)
class Write:
    events: Sequence[Any]  # domain events
    messages: Sequence[Any] = ()  # outbox messages


def group_commit(transaction: Transaction, concurrency: int = 2) -> Coalescer[Write, None]:
    async def commit(writes: list[Write]) -> list[BaseException | None]:
        observed.group_committed(len(writes))
        if len(writes) > 1:
            try:
                await _commit(transaction, writes)
            except Exception:  # each write is tried alone below and reports its own error
                pass
            else:
                return [None] * len(writes)
        outcomes: list[BaseException | None] = []
        for write in writes:
            try:
                await _commit(transaction, [write])
            except Exception as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    return Coalescer(commit, concurrency)


async def _commit(transaction: Transaction, writes: list[Write]) -> None:
    async with transaction() as uow:
        await uow.append([event for write in writes for event in write.events])
        messages = [message for write in writes for message in write.messages]
        if messages:
            await uow.enqueue(*messages)
