"""Rebuild every read model from the event store, then swap the result in while writers wait briefly."""

import gc
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from projections.apply import Fold
from projections.registry import changes_for
from projections.tables import READ_MODELS

BATCH = 5000
_json = msgspec.json.Encoder()


class ReadAll(Protocol):
    def __call__(
        self, after: int = 0, limit: int = 1000, conn: AsyncConnection | None = None
    ) -> Awaitable[list[tuple[int, Any]]]: ...


Progress = Callable[[int, int], None]


async def rebuild(engine: AsyncEngine, read_all: ReadAll, progress: Progress | None = None) -> int:
    """Replays all events into fresh read-model rows; returns how many events were replayed."""
    # The fold holds a row per run and creates no reference cycles: the cycle collector, which would walk
    # all of it again and again as it grows, is paused meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _rebuild(engine, read_all, progress)
    finally:
        if collecting:
            gc.enable()


async def _rebuild(engine: AsyncEngine, read_all: ReadAll, progress: Progress | None) -> int:
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
            await _copy(conn, table, fold.table_rows(table))
    if progress:
        progress(replayed, replayed)
    return replayed


async def _copy(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write the rows with COPY: the fastest way in, and rows are plain values already."""
    if not rows:
        return
    columns = [column.name for column in table.columns]
    json_columns = {column.name for column in table.columns if isinstance(column.type, JSONB)}
    records = [tuple(_encode(row[name]) if name in json_columns else row[name] for name in columns) for row in rows]
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table.name, records=records, columns=columns)


def _encode(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()
