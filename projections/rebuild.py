"""Rebuild every read model from the event store, then swap the result in while writers wait briefly."""

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.apply import Fold
from projections.registry import changes_for
from projections.tables import READ_MODELS

BATCH = 5000
INSERT_CHUNK = 2000


class ReadAll(Protocol):
    def __call__(
        self, after: int = 0, limit: int = 1000, conn: AsyncConnection | None = None
    ) -> Awaitable[list[tuple[int, Any]]]: ...


Progress = Callable[[int, int], None]


async def rebuild(engine: AsyncEngine, read_all: ReadAll, progress: Progress | None = None) -> int:
    """Replays all events into fresh read-model rows; returns how many events were replayed."""
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(text("events")))).scalar_one()
    fold = Fold()
    position, replayed = 0, 0
    while batch := await read_all(position, BATCH):
        fold.apply(changes_for(event for _, event in batch))
        position = batch[-1][0]
        replayed += len(batch)
        if progress:
            progress(replayed, max(total, replayed))
    async with engine.begin() as conn:
        # SHARE mode waits for running appends and holds new ones until the swap commits.
        await conn.execute(text("LOCK TABLE events IN SHARE MODE"))
        while tail := await read_all(position, BATCH, conn):
            fold.apply(changes_for(event for _, event in tail))
            position = tail[-1][0]
            replayed += len(tail)
        await conn.execute(text("TRUNCATE " + ", ".join(table.name for table in READ_MODELS)))
        for table in READ_MODELS:
            rows = fold.table_rows(table)
            for start in range(0, len(rows), INSERT_CHUNK):
                await conn.execute(insert(table), rows[start : start + INSERT_CHUNK])
    if progress:
        progress(replayed, replayed)
    return replayed
