"""The outbox relay: publishes due outbox rows to Kafka and records, on each row the broker acked, where the
message went (topic, partition, offset). The row stays until a worker has handled the message."""

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.topic_ring import TopicRing

log = logging.getLogger(__name__)

_CLAIM = text(
    "SELECT id, topic, key, value, headers FROM outbox WHERE published_at IS NULL AND available_at <= now() "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_PUBLISHED = text(
    "UPDATE outbox SET published_at = clock_timestamp(), kafka_topic = m.topic, kafka_partition = m.partition, "
    "kafka_offset = m.kafka_offset FROM unnest(CAST(:ids AS bigint[]), CAST(:topics AS text[]), "
    "CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) AS m(id, topic, partition, kafka_offset) "
    "WHERE outbox.id = m.id"
)
_NEXT_DUE = text("SELECT EXTRACT(EPOCH FROM (min(available_at) - now())) FROM outbox WHERE published_at IS NULL")


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        pause_after_publish: float = 0.0,
        ring: TopicRing | None = None,
    ) -> None:
        self.pause_after_publish = pause_after_publish
        self.ring = ring or TopicRing()
        self.engine = engine
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.published = 0
        self._wake = asyncio.Event()

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch of due rows; returns how many were published."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self.batch_size})).all()
            if not rows:
                return 0
            now = time.time()  # one slot of the ring for the whole batch
            sent = [
                await self.producer.send(
                    self.ring.current(topic, now), value=value, key=key.encode(), headers=_headers(id_, headers)
                )
                for id_, topic, key, value, headers in rows
            ]
            acked = await asyncio.gather(*sent)
            if self.pause_after_publish:
                await asyncio.sleep(self.pause_after_publish)  # fault injection: a crash here duplicates
            where = {
                "ids": [row[0] for row in rows],
                "topics": [meta.topic for meta in acked],
                "partitions": [meta.partition for meta in acked],
                "offsets": [meta.offset for meta in acked],
            }
            await conn.execute(_PUBLISHED, where)
        self.published += len(rows)
        return len(rows)

    async def run(self) -> None:
        async with self._listening():
            while True:
                self._wake.clear()
                try:
                    if await self.publish_batch() == self.batch_size:
                        continue
                except Exception:
                    log.exception("outbox relay: publishing failed; retrying in %.1fs", self.poll_seconds)
                    await asyncio.sleep(self.poll_seconds)
                    continue
                idle = await self._idle_seconds()
                try:
                    await asyncio.wait_for(self._wake.wait(), idle)
                except TimeoutError:
                    pass

    async def _idle_seconds(self) -> float:
        try:
            async with self.engine.connect() as conn:
                due_in = (await conn.execute(_NEXT_DUE)).scalar()
        except Exception:
            return self.poll_seconds
        if due_in is None:
            return self.poll_seconds
        return max(0.0, min(float(due_in), self.poll_seconds))

    def _listening(self) -> "_Listener":
        return _Listener(self.engine, self._wake)


class _Listener:
    """Holds one connection that LISTENs on the outbox channel and wakes the relay on each NOTIFY."""

    def __init__(self, engine: AsyncEngine, wake: asyncio.Event) -> None:
        self.engine = engine
        self.wake = wake
        self._conn: Any = None

    async def __aenter__(self) -> None:
        try:
            self._conn = await self.engine.connect()
            raw = await self._conn.get_raw_connection()
            await raw.driver_connection.add_listener("outbox", self._notified)
        except Exception:
            log.warning("LISTEN outbox failed; the relay polls instead", exc_info=True)
            await self._close()

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.shield(conn.close())

    def _notified(self, *args: object) -> None:
        self.wake.set()


def _headers(outbox_id: int, headers: dict[str, str]) -> list[tuple[str, bytes]]:
    pairs = [("id", str(outbox_id).encode())]
    pairs.extend((name, value.encode()) for name, value in headers.items())
    return pairs
