"""The worker: a member of the job-execution consumer group that executes runs, delivers scheduled
events and sends run notifications.

Kafka delivers at least once; a message that is a duplicate or stale is acknowledged and ignored.
Offsets are committed only after the database commit of every message before them.
"""

import asyncio
import logging
from typing import Any
from uuid import UUID

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from app import commands
from app.executor import RunExecutor
from app.messages import DeliverEvent, ExecuteJobRun, Message, NotifyRun, decode_message
from app.notifier import Notifier

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


class Dispatcher:
    def __init__(self, executor: RunExecutor, notifier: Notifier) -> None:
        self.executor = executor
        self.notifier = notifier

    async def handle(self, message: Message) -> str:
        match message:
            case ExecuteJobRun():
                return await self.executor.handle(message)
            case NotifyRun():
                return await self.notifier.handle(message)
            case DeliverEvent():
                store = self.executor.store
                return await commands.deliver_event(store, self.executor.topic, UUID(message.event_record_id))
        raise TypeError(f"unknown message {message!r}")


class DeadLetters:
    """Where messages no worker can read go (`<topic>.dlq`), with the reason in a header."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        headers = [*(record.headers or ()), ("error", reason.encode()), ("source-topic", record.topic.encode())]
        await self.producer.send_and_wait(self.topic, value=record.value, key=record.key, headers=headers)


class Worker:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dispatcher: Dispatcher,
        concurrency: int = 64,
        high_lane: str | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.dispatcher = dispatcher
        self.concurrency = concurrency
        self.high_lane = high_lane
        self.malformed = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Consume until asked to stop; what was taken is finished and committed before it returns."""
        while not self.stopping.is_set():
            batches = await self._next_batches()
            if batches:
                await self._process(batches)

    async def _next_batches(self) -> Batches:
        """Whatever waits on the high-priority lane first; then anything."""
        high = [tp for tp in self.consumer.assignment() if tp.topic == self.high_lane]
        if high:
            batches: Batches = await self.consumer.getmany(*high, timeout_ms=0, max_records=self.concurrency)
            if batches:
                return batches
        everything: Batches = await self.consumer.getmany(timeout_ms=1000, max_records=self.concurrency)
        return everything

    async def _process(self, batches: Batches) -> None:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(record: ConsumerRecord[Any, Any]) -> bool:
            async with limit:
                return await self._handle_record(record)

        results = await asyncio.gather(*(asyncio.gather(*(one(r) for r in records)) for records in batches.values()))
        commits: dict[TopicPartition, int] = {}
        for (partition, records), done in zip(batches.items(), results, strict=True):
            failed = next((r.offset for r, ok in zip(records, done, strict=True) if not ok), None)
            if failed is None:
                commits[partition] = records[-1].offset + 1
                continue
            if failed > records[0].offset:
                commits[partition] = failed
            self.consumer.seek(partition, failed)
        if commits:
            await self.consumer.commit(commits)

    async def _handle_record(self, record: ConsumerRecord[Any, Any]) -> bool:
        """True when the record is done with (handled or skipped for good); False to redeliver it."""
        try:
            message = decode_message(record.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self.malformed += 1
            log.error(
                "malformed message at %s/%d offset %d goes to the dead-letter topic: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            if self.dead_letters is not None:
                await self.dead_letters.send(record, str(error))
            return True
        try:
            await self.dispatcher.handle(message)
        except Exception:
            log.exception("%s failed to process; it will be redelivered", message)
            await asyncio.sleep(1.0)
            return False
        return True
