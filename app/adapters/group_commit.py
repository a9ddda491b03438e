"""Group commit: the writes of concurrent callers in one process share a transaction.

Each caller hands over its events and outbox rows and waits until they are committed, so under load one
transaction carries many writes (its round trips and its commit paid once). When a shared transaction fails,
every caller still gets its own outcome and no write is held back by another: after a conflict (an append to a
version already taken) the batch is split in halves, each committed on its own and split again if it conflicts,
so one conflicting write among n costs about 2·log2(n) transactions, not n; after any other error each write is
committed alone.
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
Outcomes = list[BaseException | None]  # each write's: None when committed, else the error its caller gets


@dataclass(frozen=True, slots=True)
class Write:
    events: Sequence[Any]  # domain events
    messages: Sequence[Any] = ()  # outbox messages


def group_commit(transaction: Transaction, conflict: type[Exception], concurrency: int = 2) -> Coalescer[Write, None]:
    """`conflict`: the error of a write that conflicts with one already committed (its batch is split)."""

    async def commit(writes: list[Write]) -> Outcomes:
        observed.group_committed(len(writes))
        return await _settle(transaction, writes, conflict)

    return Coalescer(commit, concurrency)


async def _settle(transaction: Transaction, writes: list[Write], conflict: type[Exception]) -> Outcomes:
    """Commit the writes together; when that fails, find each one's own outcome (see the module's docstring)."""
    try:
        await _commit(transaction, writes)
    except conflict as error:
        if len(writes) == 1:
            return [error]
        half = len(writes) // 2
        return [
            *await _settle(transaction, writes[:half], conflict),
            *await _settle(transaction, writes[half:], conflict),
        ]
    except Exception as error:
        if len(writes) == 1:
            return [error]
        return [outcome for write in writes for outcome in await _settle(transaction, [write], conflict)]
    return [None] * len(writes)


async def _commit(transaction: Transaction, writes: list[Write]) -> None:
    async with transaction() as uow:
        await uow.append([event for write in writes for event in write.events])
        messages = [message for write in writes for message in write.messages]
        if messages:
            await uow.enqueue(*messages)
