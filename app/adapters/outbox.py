"""The outbox table beyond its inserts (which writers make in their own transactions, app/adapters/store.py).

A row lives until its message is handled: the relay claims due rows, publishes them and records where each
went (topic, partition, offset); a worker deletes a row once it is done with its message, and only then
commits an offset past it. So a published row is a message not handled yet, and where it should be is known.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db import direct
from app.adapters.direct import arguments
from app.adapters.relay_shares import EVERYTHING, Share

log = logging.getLogger(__name__)

# The relay's share (app/adapters/relay_shares.py): its ids, and any row due for longer than the grace.
_IN_SHARE = "id % :share_count = :share_position"
_GRACE = "make_interval(secs => :share_grace)"
_CLAIM = text(
    "SELECT id, topic, key, value, headers FROM outbox WHERE published_at IS NULL AND available_at <= now() "
    f"AND ({_IN_SHARE} OR available_at <= now() - {_GRACE}) ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
# What the relay and the workers record about a message (published, handled) may be lost in a database crash
# without harm: a row that comes back unpublished or unhandled is published again, and the copy is a duplicate
# the workers skip. Any later durable commit flushes these too (the WAL is written in order). So they do not
# wait for the disk: that wait was the longest step of a relay's batch. The setting is made by the statement
# itself (read when its transaction commits), not by a SET LOCAL before it: one round trip fewer.
_NOT_DURABLE = "(SELECT set_config('synchronous_commit', 'off', true)) AS not_durable"
# The time an acknowledgement arrived, not the transaction's start: see Outbox.lost.
_MARK_PUBLISHED = text(
    "UPDATE outbox SET published_at = clock_timestamp(), kafka_topic = m.topic, kafka_partition = m.partition, "
    "kafka_offset = m.kafka_offset FROM unnest(CAST(:ids AS bigint[]), CAST(:topics AS text[]), "
    "CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) AS m(id, topic, partition, kafka_offset), "
    f"{_NOT_DURABLE} WHERE outbox.id = m.id"
)
_NEXT_DUE = text(
    f"SELECT EXTRACT(EPOCH FROM (min(CASE WHEN {_IN_SHARE} THEN available_at ELSE available_at + {_GRACE} END) "
    "- now())) FROM outbox WHERE published_at IS NULL"
)
_ACKNOWLEDGE = text(f"DELETE FROM outbox USING {_NOT_DURABLE} WHERE id = ANY(:ids)")
_NOW = text("SELECT clock_timestamp()")
_PASSED = text(
    "SELECT id FROM outbox WHERE published_at IS NOT NULL AND kafka_topic = :topic AND kafka_partition = :partition "
    "AND kafka_offset < :low"
)
_PAST_END = text(
    "SELECT id, kafka_offset FROM outbox WHERE published_at IS NOT NULL AND kafka_topic = :topic "
    "AND kafka_partition = :partition AND kafka_offset >= :end AND published_at < :before "
    "ORDER BY kafka_offset LIMIT :n"
)
_REPUBLISH = text(
    "UPDATE outbox SET published_at = NULL, kafka_topic = NULL, kafka_partition = NULL, kafka_offset = NULL, "
    "available_at = now() WHERE id = ANY(:ids) AND published_at < :before"
)
_IN_FLIGHT = text("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
_WAKE_RELAY = text("SELECT pg_notify('outbox', '')")
_IN_USE = text("SELECT EXISTS (SELECT 1 FROM outbox WHERE kafka_topic = :topic)")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


@dataclass(frozen=True, slots=True)
class Published:
    """Where the broker put a message."""

    id: int
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Due:
    """A row due to be published."""

    id: int
    topic: str
    key: str
    value: bytes
    headers: dict[str, str]


class Claim:
    """Due rows held (locked) by one relay until its transaction ends."""

    def __init__(self, conn: asyncpg.Connection, rows: Sequence[Due]) -> None:
        self.conn = conn
        self.rows = rows

    async def published(self, where: list[Published]) -> None:
        params = {
            "ids": [p.id for p in where],
            "topics": [p.topic for p in where],
            "partitions": [p.partition for p in where],
            "offsets": [p.offset for p in where],
        }
        await self.conn.execute(*arguments(_MARK_PUBLISHED, params))


class Outbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._direct = direct(engine)

    @asynccontextmanager
    async def claim(self, limit: int, share: Share = EVERYTHING) -> AsyncIterator[Claim]:
        """Up to `limit` due rows of the relay's `share`, locked against other relays (SKIP LOCKED) until the
        block ends."""
        async with self._direct.connection() as conn, conn.transaction():
            rows = await conn.fetch(*arguments(_CLAIM, {"limit": limit, **share.params()}))
            yield Claim(conn, [Due(*row) for row in rows])

    @asynccontextmanager
    async def listening(self, notified: Callable[[], None]) -> AsyncIterator[None]:
        """Calls `notified` whenever a row is inserted (NOTIFY outbox), for as long as the block runs; when
        LISTEN cannot be set up, the block runs without it (callers poll anyway)."""
        conn: Any = None
        try:
            conn = await self.engine.connect()
            raw = await conn.get_raw_connection()
            await raw.driver_connection.add_listener("outbox", lambda *_: notified())
        except Exception:
            log.warning("LISTEN outbox failed; the relay polls instead", exc_info=True)
        try:
            yield
        finally:
            if conn is not None:
                await asyncio.shield(conn.close())

    async def in_flight(self) -> int:
        """Messages published and not handled yet: what the broker holds for the workers."""
        return int(await self._direct.fetchval(_IN_FLIGHT, {}))

    async def next_due_in(self, share: Share = EVERYTHING) -> float | None:
        """Seconds until the next row not yet published is due for the relay of `share` (negative when one is
        overdue): a row of another share counts from the end of its grace."""
        due = await self._direct.fetchval(_NEXT_DUE, share.params())
        return None if due is None else float(due)

    async def acknowledge(self, outbox_ids: list[int]) -> None:
        """The messages of these rows were handled: the rows go."""
        await self._direct.execute(_ACKNOWLEDGE, {"ids": outbox_ids})  # one statement: its own transaction

    async def now(self) -> datetime:
        moment: datetime = await self._direct.fetchval(_NOW, {})
        return moment

    async def passed(self, topic: str, partition: int, low: int) -> list[int]:
        """Rows published to the partition before offset `low`."""
        rows = await self._direct.fetch(_PASSED, {"topic": topic, "partition": partition, "low": low})
        return [row["id"] for row in rows]

    async def at_or_past(self, topic: str, partition: int, end: int, before: datetime, limit: int) -> list[Published]:
        """Rows published to the partition at offset `end` or later, acknowledged by the broker before `before`."""
        params = {"topic": topic, "partition": partition, "end": end, "before": before, "n": limit}
        rows = await self._direct.fetch(_PAST_END, params)
        return [Published(row["id"], topic, partition, row["kafka_offset"]) for row in rows]

    async def republish(self, outbox_ids: list[int], before: datetime, lock: int) -> int:
        """Make the rows due again (unless published again since `before`), under the advisory `lock`;
        returns how many. The relay is woken."""
        async with self.engine.begin() as conn:
            if not (await conn.execute(_TRY_LOCK, {"key": lock})).scalar():
                return 0
            republished: int = (await conn.execute(_REPUBLISH, {"ids": outbox_ids, "before": before})).rowcount
            await conn.execute(_WAKE_RELAY)
        return republished

    @asynccontextmanager
    async def unused(self, topic: str, lock: int) -> AsyncIterator[bool]:
        """Whether no row names `topic` (every message published to it was handled), held true under the
        advisory `lock` for the block: one process at a time acts on it."""
        async with self.engine.begin() as conn:
            locked = bool((await conn.execute(_TRY_LOCK, {"key": lock})).scalar())
            yield locked and not (await conn.execute(_IN_USE, {"topic": topic})).scalar()
