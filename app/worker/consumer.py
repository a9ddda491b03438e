"""The worker: a member of the job-execution consumer group that executes runs, delivers scheduled
events, sends run notifications, hands matched events to waiting tasks and times out their callbacks.

Kafka delivers at least once; a message that is a duplicate or stale is acknowledged and ignored. A message
is done when it was handled, or set aside: unreadable, or failing every time, it goes to the dead-letter
topic. Once done, its outbox row is deleted; then, and only then, its offset may be committed (what the
rescuer relies on to tell a lost message from one waiting to be consumed). A message that fails because the
database or the broker is unreachable waits for it, its partition paused, without holding a slot.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from app.adapters.messages import (
    DeliverEvent,
    DispatchEvent,
    ExecuteJobRun,
    FireSchedule,
    Message,
    NotifyRun,
    PerformTask,
    TimeOutCallback,
    decode_message,
    outbox_id,
)
from app.adapters.topic_ring import TopicRing
from app.faults import is_unavailable
from app.observability import record as observed
from app.observability.handling import Handling
from app.service import JobsService
from app.worker.executor import RunExecutor
from app.worker.notifier import Notifier
from app.worker.performer import TaskPerformer

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
Acknowledge = Callable[[list[int]], Awaitable[None]]

MAX_TRIES = 5  # a message failing this often (for any reason but an unreachable dependency) is dead-lettered
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0
REWIND_CHECK_SECONDS = 0.5
# How often a worker deletes the outbox rows of the messages it is done with and commits their offsets: each
# time a statement (a transaction) and a request to the broker, whatever it carries, so every worker process
# costs that many a second of its own; a crash meanwhile only redelivers what was done since (duplicates, ignored).
COMMIT_INTERVAL_SECONDS = 0.1


class Dispatcher:
    """Hands each message to what handles its kind."""

    def __init__(
        self, service: JobsService, executor: RunExecutor, notifier: Notifier, performer: TaskPerformer | None = None
    ) -> None:
        self.service = service
        self.executor = executor
        self.notifier = notifier
        self.performer = performer or TaskPerformer(service, executor.client, executor.client.policy)

    async def handle(self, message: Message) -> str:
        match message:
            case ExecuteJobRun():
                return await self.executor.handle(message)
            case NotifyRun():
                return await self.notifier.handle(message)
            case DeliverEvent():
                return await self.service.events.deliver(UUID(message.event_record_id))
            case DispatchEvent():
                return await self.service.dispatchers.dispatch(
                    UUID(message.dispatcher_id), UUID(message.event_record_id)
                )
            case TimeOutCallback():
                return await self.service.tasks.time_out_callback(UUID(message.run_id), message.task_id)
            case FireSchedule():
                return await self.service.schedules.fire(
                    UUID(message.schedule_id), datetime.fromisoformat(message.tick_at)
                )
            case PerformTask():
                return await self.performer.handle(message)
        raise TypeError(f"unknown message {message!r}")

    async def give_up(self, message: Message, reason: str) -> None:
        """The message was dead-lettered: a run it would have executed fails, naming why."""
        if isinstance(message, ExecuteJobRun):
            await self.service.executions.fail_unprocessable(message.run_id, message.attempt, reason)
        elif isinstance(message, PerformTask):
            await self.service.operations.give_up(message.run_id, message.task_id, message.attempt, reason)


class DeadLetters:
    """Where messages no worker can process go (`<topic>.dlq`), with the reason in a header."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        headers = [*(record.headers or ()), ("error", reason.encode()), ("source-topic", record.topic.encode())]
        await self.producer.send_and_wait(self.topic, value=record.value, key=record.key, headers=headers)


class _Partition:
    """Offsets taken from one partition: how far they are done without a gap (what may be committed)."""

    def __init__(self) -> None:
        self.pending: dict[int, bool] = {}
        self.committable: int | None = None
        self.committed: int | None = None
        self.waiting = 0  # messages waiting for an unreachable dependency: the partition is paused meanwhile

    def take(self, offset: int) -> None:
        self.pending[offset] = False

    def done(self, offset: int) -> None:
        self.pending[offset] = True
        for taken in sorted(self.pending):
            if not self.pending[taken]:
                break
            del self.pending[taken]
            self.committable = taken + 1

    def to_commit(self) -> int | None:
        if self.committable is None or self.committable == self.committed:
            return None
        return self.committable


class Worker:
    """Keeps up to `concurrency` messages in hand at once, taking more as each is done (no batch waits for
    its slowest message); a partition's offset is committed only up to the first message not yet done."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        dispatcher: Dispatcher,
        concurrency: int = 256,
        high_lanes: frozenset[str] = frozenset(),
        dead_letters: DeadLetters | None = None,
        acknowledge: Acknowledge | None = None,
        max_tries: int = MAX_TRIES,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        ring: TopicRing | None = None,
    ) -> None:
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.dispatcher = dispatcher
        self.concurrency = concurrency
        self.high_lanes = high_lanes
        self.ring = ring or TopicRing()
        self._rewound_at = 0.0
        self.acknowledge = acknowledge
        self.max_tries = max_tries
        self.retry_base = retry_base_seconds
        self.malformed = 0
        self.dead_lettered = 0
        self.stopping = asyncio.Event()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy = 0  # messages being handled now; those waiting to try again hold no slot
        self._acked: list[int] = []
        self._room = asyncio.Event()
        self._done = asyncio.Event()  # something was done since the last commit
        self._committing = asyncio.Lock()
        self._unavailable: str | None = None

    @property
    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    async def run(self) -> None:
        """Consume until asked to stop; what was taken is finished and committed before it returns."""
        committer = asyncio.create_task(self._commit_in_background())
        try:
            while not self.stopping.is_set():
                free = self.concurrency - self._busy
                if free <= 0 or len(self._in_flight) >= 4 * self.concurrency:
                    self._room.clear()
                    await self._room.wait()
                    continue
                await self._rewind_emptied_slots()
                for partition, records in (await self._next_batches(free)).items():
                    state = self._partitions.setdefault(partition, _Partition())
                    for record in records:
                        state.take(record.offset)
                        self._busy += 1
                        task = asyncio.create_task(self._handle(partition, state, record))
                        self._in_flight.add(task)
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            await self._commit()

    async def _commit_in_background(self) -> None:
        """Acknowledge and commit what is done, off the path that takes messages in."""
        while True:
            await self._done.wait()
            self._done.clear()
            await self._commit()
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)

    async def _rewind_emptied_slots(self) -> None:
        """A slot of the topic ring emptied by its keeper starts over at offset 0: read it from there (the broker
        answers a fetch past the end of a log with nothing, not with an error)."""
        if not self.ring.enabled or time.monotonic() - self._rewound_at < REWIND_CHECK_SECONDS:
            return
        self._rewound_at = time.monotonic()
        for partition in self.consumer.assignment():
            end = self.consumer.highwater(partition)
            if end is not None and end < await self.consumer.position(partition):
                log.info("%s/%d was emptied: reading it from the start", partition.topic, partition.partition)
                self.consumer.seek(partition, 0)
                self._partitions.pop(partition, None)

    async def _next_batches(self, limit: int) -> Batches:
        """Whatever waits on the high-priority lane first; then anything."""
        high = [tp for tp in self.consumer.assignment() if tp.topic in self.high_lanes]
        if high:
            batches: Batches = await self.consumer.getmany(*high, timeout_ms=0, max_records=limit)
            if batches:
                return batches
        timeout = 50 if self._in_flight else 500
        everything: Batches = await self.consumer.getmany(timeout_ms=timeout, max_records=limit)
        return everything

    async def _handle(self, partition: TopicPartition, state: _Partition, record: ConsumerRecord[Any, Any]) -> None:
        try:
            if await self._process(partition, state, record):
                state.done(record.offset)
                if (row := outbox_id(record.headers)) is not None:
                    self._acked.append(row)
                self._done.set()
        finally:
            self._busy -= 1
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.discard(task)
            self._room.set()

    async def _process(self, partition: TopicPartition, state: _Partition, record: ConsumerRecord[Any, Any]) -> bool:
        """True when the record is done with (handled or set aside for good); False when the worker stops first
        (its offset stays uncommitted and it is redelivered)."""
        try:
            message = decode_message(record.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            self.malformed += 1
            log.error("malformed message at %s goes to the dead-letter topic: %s", _where(record), error)
            return await self._dead_letter(record, None, f"malformed: {error}")
        with Handling(record.headers, message):
            return await self._handle_message(partition, state, record, message)

    async def _handle_message(
        self, partition: TopicPartition, state: _Partition, record: ConsumerRecord[Any, Any], message: Message
    ) -> bool:
        failures, waits = 0, 0
        try:
            while True:
                try:
                    await self.dispatcher.handle(message)
                except Exception as error:
                    if is_unavailable(error):
                        if waits == 0:
                            self._hold(partition, state, error)
                        waits += 1
                        if not await self._pause(min(self.retry_base * 2 ** (waits - 1), RETRY_CAP_SECONDS)):
                            return False
                        continue
                    failures += 1
                    if failures >= self.max_tries:
                        reason = f"failed {failures} times: {type(error).__name__}: {error}"
                        log.error("%s at %s goes to the dead-letter topic: it %s", message, _where(record), reason)
                        return await self._dead_letter(record, message, reason)
                    if failures == 1:
                        log.warning("%s at %s failed; %d more tries", message, _where(record), self.max_tries - 1,
                                    exc_info=error)  # fmt: skip
                    if not await self._pause(self.retry_base * 2 ** (failures - 1)):
                        return False
                else:
                    observed.message_done(type(message).__name__, "handled")
                    if self._unavailable is not None:
                        log.warning(
                            "the dependency is back (%s was the error); waiting messages go on", self._unavailable
                        )
                        self._unavailable = None
                    return True
        finally:
            if waits:
                self._release(partition, state)

    def _hold(self, partition: TopicPartition, state: _Partition, error: Exception) -> None:
        """A message waits for an unreachable database or broker: its partition takes nothing more meanwhile."""
        if self._unavailable is None:
            self._unavailable = f"{type(error).__name__}: {error}"
            log.warning("a dependency is unavailable (%s); messages wait for it, their partitions paused", error)
        state.waiting += 1
        if state.waiting == 1 and partition in self.consumer.assignment():
            self.consumer.pause(partition)

    def _release(self, partition: TopicPartition, state: _Partition) -> None:
        state.waiting -= 1
        if state.waiting == 0 and partition in self.consumer.assignment():
            self.consumer.resume(partition)

    async def _pause(self, seconds: float) -> bool:
        """Sleep without holding a slot; False when the worker is stopping meanwhile."""
        self._busy -= 1
        self._room.set()
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return True
        finally:
            self._busy += 1
        return False

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], message: Message | None, reason: str) -> bool:
        while self.dead_letters is not None:
            try:
                await self.dead_letters.send(record, reason)
                break
            except Exception as error:
                log.warning("could not send to the dead-letter topic (%s); trying again", error)
                if not await self._pause(RETRY_CAP_SECONDS / 10):
                    return False
        self.dead_lettered += 1
        observed.dead_lettered(None if message is None else type(message).__name__)
        if message is not None:
            try:
                await self.dispatcher.give_up(message, reason)
            except Exception:
                log.exception("%s was dead-lettered, and what it concerns could not be marked failed", message)
        return True

    async def _commit(self) -> None:
        """Delete the outbox rows of the messages done, then commit the offsets past them (those taken at the
        same moment as the rows: every message an offset passes has its row among them)."""
        async with self._committing:
            commits = {
                tp: offset for tp, state in self._partitions.items() if (offset := state.to_commit()) is not None
            }
            acked, self._acked = self._acked, []
            if acked and self.acknowledge is not None:
                try:
                    await self.acknowledge(acked)
                except Exception as error:
                    self._acked.extend(acked)
                    log.warning("could not acknowledge %d messages (%s); their offsets wait", len(acked), error)
                    return
            if not commits:
                return
            try:
                await self.consumer.commit(commits)
            except Exception as error:  # a rebalance took the partition: its new owner redelivers
                log.warning("offset commit failed (%s); those messages may be redelivered", error)
                return
            for partition, offset in commits.items():
                if (state := self._partitions.get(partition)) is not None:
                    state.committed = offset

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is done of the partitions taken away, then forget them (their new owner starts there)."""
        await self._commit()
        for partition in revoked:
            self._partitions.pop(partition, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def _where(record: ConsumerRecord[Any, Any]) -> str:
    return f"{record.topic}/{record.partition} offset {record.offset}"
