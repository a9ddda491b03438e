"""A ring of topics, for a broker that never trims what it holds.

The embedded Tansu keeps every message in memory and lists a partition's whole log on every fetch, so a
topic written for hours gets slower with each message. With a ring, each topic the outbox names is written
as one of RING_SLOTS slot topics (`<topic>.r0`, `.r1`, `.r2`), a slot per period in turn. A keeper empties the
upcoming slot (deletes it and creates it anew) once every message published to it was handled, before its
turn comes round again; while one is not, the slot is left as it is and simply grows. Consumers subscribe
to every slot by name, so a switch costs them nothing (no rebalance). A worker whose position in a slot lies
past its recreated end starts it over from the beginning.

With a period of 0 (a real Kafka, whose retention is its own) each topic is itself.
"""

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

RING_SLOTS = 3
EMBEDDED_BROKER_PERIOD_SECONDS = 20.0  # at 1,600 messages/s, a slot's partitions stay under 10k batches each
_ONE_KEEPER = text("SELECT pg_try_advisory_xact_lock(7342003)")
_IN_USE = text("SELECT EXISTS (SELECT 1 FROM outbox WHERE kafka_topic = :topic)")


@dataclass(frozen=True, slots=True)
class TopicRing:
    period_seconds: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.period_seconds > 0

    def current(self, topic: str, now: float | None = None) -> str:
        """The topic a message for `topic` is published to now."""
        if not self.enabled:
            return topic
        return slot_topic(topic, self._turn(now) % RING_SLOTS)

    def upcoming(self, topic: str, now: float | None = None) -> str:
        """The slot whose turn comes next: the one to empty during this period."""
        return slot_topic(topic, (self._turn(now) + 1) % RING_SLOTS)

    def topics(self, topic: str) -> list[str]:
        """Every topic a message for `topic` may be found in."""
        return [slot_topic(topic, slot) for slot in range(RING_SLOTS)] if self.enabled else [topic]

    def phase(self, now: float | None = None) -> float:
        """How far into its period the current slot is, from 0 to 1."""
        return ((time.time() if now is None else now) % self.period_seconds) / self.period_seconds

    def turn(self, now: float | None = None) -> int:
        return self._turn(now)

    def _turn(self, now: float | None) -> int:
        return int((time.time() if now is None else now) // self.period_seconds)


def slot_topic(topic: str, slot: int) -> str:
    return f"{topic}.r{slot}"


class RingKeeper:
    """Empties the upcoming slot of each topic once nothing published to it waits to be handled (the outbox
    keeps a message's row until then). One keeper acts at a time, across processes."""

    def __init__(
        self, engine: AsyncEngine, bootstrap_servers: str, ring: TopicRing, topics: list[str], partitions: int
    ) -> None:
        self.engine = engine
        self.ring = ring
        self.topics = topics
        self.partitions = partitions
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        self._emptied: set[tuple[str, int]] = set()
        self._waiting: set[str] = set()
        self.recycled = 0

    async def start(self) -> None:
        await self._admin.start()

    async def stop(self) -> None:
        await self._admin.close()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as error:
                log.warning("topic ring: could not empty a slot (%s); trying again", error)
            await asyncio.sleep(self.ring.period_seconds / 8)

    async def tick(self) -> None:
        if self.ring.phase() > 0.75:
            return  # too close to the upcoming slot's turn: a slow relay could be publishing there soon
        turn = self.ring.turn()
        for topic in self.topics:
            upcoming = self.ring.upcoming(topic)
            if (upcoming, turn) not in self._emptied and await self._empty(upcoming):
                self._emptied.add((upcoming, turn))
        self._emptied = {done for done in self._emptied if done[1] >= turn - RING_SLOTS}

    async def _empty(self, topic: str) -> bool:
        async with self.engine.begin() as conn:
            if not (await conn.execute(_ONE_KEEPER)).scalar():
                return False
            if (await conn.execute(_IN_USE, {"topic": topic})).scalar():
                if topic not in self._waiting:
                    log.warning("topic ring: %s still holds messages not handled; it is emptied once they are", topic)
                    self._waiting.add(topic)
                return False
            self._waiting.discard(topic)
            try:
                await self._admin.delete_topics([topic])
            except UnknownTopicOrPartitionError:
                pass
            try:
                await self._admin.create_topics([NewTopic(topic, num_partitions=self.partitions, replication_factor=1)])
            except TopicAlreadyExistsError:
                pass
        self.recycled += 1
        return True
