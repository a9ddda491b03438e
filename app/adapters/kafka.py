"""Kafka clients and topic set-up, configured from Settings."""

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.adapters.messages import dead_letter_topic, lane_topics, outbox_id
from app.adapters.topic_ring import TopicRing
from app.observability.logs import Failures
from app.settings import Settings

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 5.0


def ring(settings: Settings) -> TopicRing:
    return TopicRing(settings.topic_ring_seconds)


def consumed_topics(settings: Settings, lane: str | None = None) -> list[str]:
    """The topics the workers read: every slot of each execution lane (or of one)."""
    lanes = (lane,) if lane else lane_topics(settings.execution_topic)
    return [topic for name in lanes for topic in ring(settings).topics(name)]


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.required_kafka,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=settings.kafka_linger_ms,
        max_batch_size=256 * 1024,
    )


def consumer(settings: Settings, *topics: str, listener: ConsumerRebalanceListener | None = None) -> AIOKafkaConsumer:
    """A member of the workers' consumer group, subscribed to `topics` (with `listener` told of rebalances)."""
    member = AIOKafkaConsumer(
        bootstrap_servers=settings.required_kafka,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.kafka_session_timeout_ms // 5),
        metadata_max_age_ms=5000,  # notice topics that come back after a broker restart
    )
    if topics:
        member.subscribe(list(topics), listener=listener)
    return member


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    start: int  # the first offset the broker still holds
    end: int  # where the broker says its log ends (Tansu says less: the start of its last batch, plus one)
    committed: int  # where the consumer group goes on from (0 when it has committed nothing)


class OffsetsReader:
    """Reads what the broker holds of each partition, and how far the workers' consumer group has come."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.required_kafka, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.required_kafka)

    async def start(self) -> None:
        await self._consumer.start()
        await self._admin.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def read(self, topics: list[str]) -> dict[TopicPartition, PartitionOffsets]:
        """Every partition of the topics that exist; raises if the broker cannot answer."""
        existing = await self._consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in existing
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        committed = await self._admin.list_consumer_group_offsets(self.settings.consumer_group, partitions=partitions)
        return {
            tp: PartitionOffsets(starts[tp], ends[tp], max(0, committed[tp].offset) if tp in committed else 0)
            for tp in partitions
        }

    async def outbox_ids(self, partition: TopicPartition, first: int) -> dict[int, int | None]:
        """The outbox row id of each record the partition holds from offset `first` to the end of its log, as
        read now (by a reader of its own, so no answer to an earlier fetch can pass for the end). Raises
        TimeoutError when the broker does not answer."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.required_kafka, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        await reader.start()
        try:
            reader.assign([partition])
            reader.seek(partition, first)
            found: dict[int, int | None] = {}
            async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
                while True:
                    asked = time.time() * 1000
                    records = (await reader.getmany(partition, timeout_ms=100, max_records=10_000)).get(partition, [])
                    found.update((record.offset, outbox_id(record.headers)) for record in records)
                    if not records and (reader.last_poll_timestamp(partition) or 0) > asked:
                        return found  # an answer with nothing more: the end of the log
        finally:
            await reader.stop()


async def keep_topics(settings: Settings, interval_seconds: float = 5.0) -> None:
    """Create the topics again whenever they are gone (a broker that keeps nothing restarted)."""
    failures = Failures(log, "checking the topics")
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            await ensure_topics(settings)
        except Exception as error:
            failures.failed(error, interval_seconds)
        else:
            failures.succeeded()


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.required_kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [*consumed_topics(settings), dead_letter_topic(settings.execution_topic)]
        new = [
            NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=1)
            for name in wanted
            if name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", [t.name for t in new])
    finally:
        await admin.close()
