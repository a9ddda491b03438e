"""The keeper of the topic ring (app/adapters/topic_ring.py): empties the upcoming slot of each topic once
every message published to it was handled."""

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from app.adapters.outbox import Outbox
from app.adapters.topic_ring import RING_SLOTS, TopicRing
from app.observability.logs import Failures

log = logging.getLogger(__name__)

ONE_KEEPER = 7342003  # the advisory lock one keeper at a time holds


class RingKeeper:
    """Empties the upcoming slot of each topic once nothing published to it waits to be handled (the outbox
    keeps a message's row until then). One keeper acts at a time, across processes."""

    def __init__(
        self, outbox: Outbox, bootstrap_servers: str, ring: TopicRing, topics: list[str], partitions: int
    ) -> None:
        self.outbox = outbox
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
        failures = Failures(log, "topic ring: emptying a slot")
        while True:
            try:
                await self.tick()
            except Exception as error:
                failures.failed(error, self.ring.period_seconds / 8)
            else:
                failures.succeeded()
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
        async with self.outbox.unused(topic, ONE_KEEPER) as unused:
            if not unused:
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
