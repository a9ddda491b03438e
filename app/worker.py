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
from app.sealing import SecretKeyError

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


class _Offsets:
    """Offsets taken from one partition, and how far they are done without a gap (what may be committed)."""

    def __init__(self) -> None:
        self.pending: dict[int, bool] = {}
        self.committable: int | None = None

    def take(self, offset: int) -> None:
        self.pending[offset] = False

    def done(self, offset: int) -> None:
        self.pending[offset] = True
        for taken in sorted(self.pending):
            if not self.pending[taken]:
                break
            del self.pending[taken]
            self.committable = taken + 1


class Worker:
    """Keeps up to `concurrency` messages in hand at once, taking more as each is done (no batch waits for
    its slowest message); a partition's offset is committed only up to the first message not yet done."""

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
        self._offsets: dict[TopicPartition, _Offsets] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()

    async def run(self) -> None:
        """Consume until asked to stop; what was taken is finished and committed before it returns."""
        try:
            while not self.stopping.is_set():
                free = self.concurrency - len(self._in_flight)
                if free <= 0:
                    self._room.clear()
                    await self._room.wait()
                    await self._commit()
                    continue
                for partition, records in (await self._next_batches(free)).items():
                    offsets = self._offsets.setdefault(partition, _Offsets())
                    for record in records:
                        offsets.take(record.offset)
                        task = asyncio.create_task(self._handle(partition, record))
                        self._in_flight.add(task)
                await self._commit()
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            await self._commit()

    async def _next_batches(self, limit: int) -> Batches:
        """Whatever waits on the high-priority lane first; then anything."""
        high = [tp for tp in self.consumer.assignment() if tp.topic == self.high_lane]
        if high:
            batches: Batches = await self.consumer.getmany(*high, timeout_ms=0, max_records=limit)
            if batches:
                return batches
        timeout = 50 if self._in_flight else 500
        everything: Batches = await self.consumer.getmany(timeout_ms=timeout, max_records=limit)
        return everything

    async def _handle(self, partition: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        try:
            while not await self._handle_record(record):
                if self.stopping.is_set():
                    return  # not done: its offset stays uncommitted and it is redelivered
                await asyncio.sleep(1.0)
            self._offsets[partition].done(record.offset)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
            self._room.set()

    async def _commit(self) -> None:
        commits = {}
        for partition, offsets in self._offsets.items():
            if offsets.committable is not None:
                commits[partition] = offsets.committable
                offsets.committable = None
        if not commits:
            return
        try:
            await self.consumer.commit(commits)
        except Exception as error:  # a rebalance took the partition: its new owner redelivers
            log.warning("offset commit failed (%s); those messages will be redelivered", error)
            for partition in commits:
                self._offsets.pop(partition, None)

    async def _handle_record(self, record: ConsumerRecord[Any, Any]) -> bool:
        """True when the record is done with (handled or set aside for good); False to try it again."""
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
        except SecretKeyError as error:  # the operator's to fix: the message waits, without a traceback a second
            log.error("%s waits: %s", message, error)
            return False
        except Exception:
            log.exception("%s failed to process; trying again", message)
            return False
        return True
