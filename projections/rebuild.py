"""Rebuild every read model from the event store into shadow tables, then swap them in; writers go on meanwhile.

1. Shadow tables are made like the live ones (projections.shadow), in their own schema, unlogged.
2. The bulk pass reads the events in order and folds them in bounded batches (projections.batch), each flushed
   into the shadow while the next one is read: memory stays flat however many events there are.
3. Then the tables are made logged, the other indexes are built, and passes catch up with the events appended
   meanwhile until one finds only a few. Both write the tables to the WAL, which writers' commits wait behind,
   so one statement runs at a time.
4. One short transaction locks out appends (SHARE on events, waiting for running ones), applies the last
   events, and swaps the tables by renames. Appends queue behind its lock while it waits, so it waits only a
   few milliseconds at first, many times, longer only when those keep failing (LOCK_TIMEOUTS_MS), and catches
   up again between tries.

Until the swap commits the live tables are untouched: a crash leaves the shadow behind, which the next
rebuild drops. The rebuild's connections see the shadow schema first in their search_path, so the read-model
changes it applies with `apply_live` are the very statements writers run, landing in the shadow tables.
"""

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import msgspec
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from projections import shadow
from projections.batch import Batch
from projections.niceness import nice_backends
from projections.timestamps import utc_timestamps
from projections.written import WrittenKeys

READ_BATCH = 10_000  # events per read
FLUSH_EVERY = 20_000  # events folded in memory before they are written to the shadow
# Connections building the shadow's indexes at once: two halve the builds on an idle host, but write the WAL twice
# as fast, and under load writers' commits waited longer behind it for no faster rebuild.
INDEX_BUILDERS = 1
SMALL_TAIL = 500  # catch up until a pass reads fewer events than this, then swap (appends wait for the rest)
# Longest wait for a lock in the swap's transaction, attempt by attempt: appends queue behind that wait, so it is
# short, and longer only when short ones keep failing (appends that run longer: a busy disk, a long reader).
LOCK_TIMEOUTS_MS = (3,) * 60 + (50,) * 8 + (100,) * 4 + (200,) * 4 + (500,) * 20

_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended('jobs.projections.rebuild', 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended('jobs.projections.rebuild', 0))")
_LOCK_NOT_AVAILABLE = "55P03"
_json = msgspec.json.Encoder()
log = logging.getLogger(__name__)


class ReadAll(Protocol):
    def __call__(
        self, after: int = 0, limit: int = 1000, conn: AsyncConnection | None = None
    ) -> Coroutine[Any, Any, list[tuple[int, Any]]]: ...


Progress = Callable[[int, int], None]


class RebuildRunning(RuntimeError):
    """Another rebuild holds the rebuild lock."""


async def rebuild(
    engine: AsyncEngine, read_all: ReadAll, progress: Progress | None = None, backend_niceness: int = 0
) -> int:
    """Replays all events into fresh read-model tables and swaps them in; returns how many events it replayed.
    With `backend_niceness`, the backends filling the shadow run that much nicer (when the database is on this
    host), as the caller's reads should; the swap's does not, as appends wait for it."""
    writer = _shadow_engine(engine, pool_size=INDEX_BUILDERS + 1)  # and the rebuild lock's connection
    nice_backends(writer, backend_niceness)
    swapper = _shadow_engine(engine, pool_size=1)
    try:
        async with writer.connect() as guard:
            if not (await guard.execute(_TRY_LOCK)).scalar_one():
                raise RebuildRunning("a projections rebuild is already running; wait for it to finish")
            await guard.commit()
            # Batches hold many objects and make no cycles: the cycle collector would walk them again and again.
            # What little cyclic garbage the rest makes waits for the end.
            collecting = gc.isenabled()
            gc.disable()
            try:
                return await _Rebuild(engine, writer, swapper, read_all, progress, backend_niceness).run()
            finally:
                if collecting:
                    gc.enable()
                await guard.execute(_UNLOCK)
                await guard.commit()
    finally:
        await writer.dispose()
        await swapper.dispose()


def _shadow_engine(engine: AsyncEngine, pool_size: int) -> AsyncEngine:
    """An engine whose connections see the shadow tables first."""
    shadow_engine = create_async_engine(
        engine.url,
        pool_size=pool_size,
        max_overflow=0,
        json_serializer=lambda value: _json.encode(value).decode(),
        connect_args={"timeout": 5, "server_settings": {"search_path": f"{shadow.SHADOW}, {shadow.LIVE}"}},
    )
    event.listen(shadow_engine.sync_engine, "connect", utc_timestamps)
    return shadow_engine


class _Rebuild:
    def __init__(
        self,
        engine: AsyncEngine,
        writer: AsyncEngine,
        swapper: AsyncEngine,
        read_all: ReadAll,
        progress: Progress | None,
        backend_niceness: int = 0,
    ):
        self.engine = engine
        self.writer = writer  # its connections write to the shadow tables
        self.swapper = swapper  # the same, for the swap
        self.backend_niceness = backend_niceness
        self.read_all = read_all
        self.progress = progress
        self.position = 0
        self.replayed = 0
        self.total = 0
        self.written = WrittenKeys()  # the keys of the rows in the shadow tables

    async def run(self) -> int:
        try:
            return await self._run()
        except BaseException:
            # Whatever failed, the live tables are as they were; what was built is of no further use.
            async with self.writer.begin() as conn:
                await shadow.drop_leftovers(conn)
            raise

    async def _run(self) -> int:
        async with self.writer.begin() as conn:
            await shadow.check_swappable(conn)
            await shadow.drop_leftovers(conn)
            await shadow.create_tables(conn)
        async with self.engine.connect() as conn:
            # For the progress bar: the last position is read from the index, where a count would scan the table
            # (with parallel workers, which are not niced); the bar ends at the count replayed.
            self.total = (await conn.execute(text("SELECT coalesce(max(position), 0) FROM events"))).scalar_one()
        began = time.perf_counter()
        await self._pass()
        log.info("bulk pass over %d events in %.1fs", self.replayed, time.perf_counter() - began)
        began = time.perf_counter()
        async with self.writer.connect() as conn:
            statements = await shadow.logged_statements(conn)
        await self._run_at_once(statements)
        log.info("logged in %.1fs", time.perf_counter() - began)
        began = time.perf_counter()
        await self._build_indexes()
        log.info("indexes built in %.1fs", time.perf_counter() - began)
        began, passes, caught_up = time.perf_counter(), 1, await self._pass()
        while caught_up >= SMALL_TAIL:
            passes, caught_up = passes + 1, await self._pass()
        log.info("caught up in %d passes, %.1fs", passes, time.perf_counter() - began)
        await self._swap()
        async with self.writer.begin() as conn:
            await shadow.drop_leftovers(conn)
        if self.progress:
            self.progress(self.replayed, self.replayed)
        return self.replayed

    async def _build_indexes(self) -> None:
        """The other indexes, then the statistics, each statement in its own transaction, INDEX_BUILDERS at once."""
        async with self.writer.connect() as conn:
            statements = await shadow.index_statements(conn)
        await self._run_at_once(statements)
        await self._run_at_once(shadow.analyze_statements())

    async def _run_at_once(self, statements: list[str]) -> None:
        waiting = list(reversed(statements))

        async def builder() -> None:
            while waiting:
                statement = waiting.pop()
                async with self.writer.begin() as conn:
                    if self.backend_niceness:
                        # Parallel workers would build it beside the backend, not niced: the writers' CPU.
                        await conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 0"))
                    await conn.execute(text(statement))

        async with asyncio.TaskGroup() as builders:  # one failing stops the others
            for _ in range(INDEX_BUILDERS):
                builders.create_task(builder())

    async def _pass(self) -> int:
        """Replay the events after the position, up to the end as of now; returns how many it read. The next page
        is read while this one is folded, and a batch is written while the next one is read and folded."""
        batch, read = Batch(), 0
        flushing: asyncio.Task[None] | None = None
        reading: asyncio.Task[list[tuple[int, Any]]] | None = asyncio.create_task(
            self.read_all(self.position, READ_BATCH)
        )
        try:
            while reading is not None and (events := await reading):
                reading = None
                if len(events) == READ_BATCH:
                    reading = asyncio.create_task(self.read_all(events[-1][0], READ_BATCH))
                batch.apply_events(events)
                batch.events += len(events)
                read += len(events)
                self._advance(events)
                if batch.events >= FLUSH_EVERY:
                    if flushing:
                        await flushing
                    flushing = asyncio.create_task(self._flush(batch))
                    batch = Batch()
            if flushing:
                await flushing
        finally:
            for task in (reading, flushing):
                if task and not task.done():
                    task.cancel()
        await self._flush(batch)
        return read

    async def _flush(self, batch: Batch) -> None:
        async with self.writer.begin() as conn:
            # The shadow is dropped after a crash anyway: no need to wait for its commits to reach the disk.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            await batch.flush(conn, self.written)

    def _advance(self, events: list[tuple[int, Any]]) -> None:
        self.position = events[-1][0]
        self.replayed += len(events)
        if self.progress:
            self.progress(self.replayed, max(self.total, self.replayed))

    async def _swap(self) -> None:
        for attempt, timeout in enumerate(LOCK_TIMEOUTS_MS, 1):
            position, replayed = self.position, self.replayed
            began = time.perf_counter()
            try:
                async with self.swapper.begin() as conn:
                    await conn.execute(text(f"SET LOCAL lock_timeout = '{timeout}ms'"))
                    # SHARE waits for running appends and holds new ones until the commit: with it held every
                    # committed event is readable, none is missed in the commit-order gap.
                    await conn.execute(text(f"LOCK TABLE {shadow.LIVE}.events IN SHARE MODE"))
                    batch = Batch()
                    while tail := await self.read_all(self.position, READ_BATCH, conn):
                        batch.apply_events(tail)
                        self._advance(tail)
                    await batch.flush(conn, self.written)
                    await shadow.lock_live(conn)
                    await shadow.swap(conn)
                held = (time.perf_counter() - began) * 1000
                log.info("swapped in (attempt %d), appends held for %.0f ms", attempt, held)
                return
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
                self.position, self.replayed = position, replayed
            await self._pass()
        raise RuntimeError(f"the rebuild could not lock the tables for its swap in {len(LOCK_TIMEOUTS_MS)} attempts")
