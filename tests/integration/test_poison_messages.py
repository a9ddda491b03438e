"""Messages that fail every time go to the dead-letter topic after a few tries, without stopping the worker or
its partition; a message that waits for an unreachable dependency holds no slot; bookkeeping survives a
rebalance."""

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy.exc import OperationalError

from app.adapters import kafka
from app.adapters.messages import DeliverEvent, ExecuteJobRun, Message, NotifyRun, dead_letter_topic, encode_message
from app.settings import Settings
from app.worker.consumer import MAX_TRIES, Dispatcher, Worker
from tests.helpers import finished, start_test_run, wait_for

POISON = 64


async def _dead_letters(settings: Settings, expected: int) -> list[Any]:
    reader = kafka.consumer(replace(settings, consumer_group="dlq-reader"), dead_letter_topic(settings.execution_topic))
    await reader.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await reader.stop()
    return records


async def test_poison_messages_go_to_the_dead_letter_topic_and_stop_nothing(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    poison: list[Message] = [
        *(ExecuteJobRun(f"not-a-uuid-{i}", "x", "return-value", "1.0.0", 1) for i in range(POISON - 2)),
        DeliverEvent("not-a-uuid"),
        NotifyRun("not-a-uuid", "callback", 1),
    ]
    try:
        for i, message in enumerate(poison):  # well-formed, and failing every time
            await producer.send_and_wait(settings.execution_topic, encode_message(message), key=b"%d" % i)
    finally:
        await producer.stop()
    began = time.monotonic()
    run_ids = [await start_test_run(api, "return-value", {"i": i}) for i in range(20)]
    for run_id in run_ids:
        assert (await finished(api, run_id, timeout=60))["status"] == "SUCCESS"
    print(f"\n20 runs behind {POISON} poison messages completed in {time.monotonic() - began:.1f}s")
    dead = await _dead_letters(settings, POISON)
    assert len(dead) == POISON
    reasons = {dict(record.headers)["error"].decode() for record in dead}
    assert all(reason.startswith(f"failed {MAX_TRIES} times: ValueError") for reason in reasons), reasons
    offsets = kafka.OffsetsReader(settings)
    await offsets.start()
    try:
        ends = {}  # where each log really ends (the broker's own figure can be short of it)
        for partition in await offsets.read([settings.execution_topic]):
            held = await offsets.outbox_ids(partition, 0)
            ends[partition] = max(held) + 1 if held else 0
        for _ in range(300):  # nothing holds a partition back: the group commits to the end of every log
            read = await offsets.read([settings.execution_topic])
            committed = {tp: p.committed for tp, p in read.items()}
            if committed == ends:
                break
            await asyncio.sleep(0.1)
        assert committed == ends
    finally:
        await offsets.stop()


class ScriptedDispatcher(Dispatcher):
    """Stands in for the database: `failing` keys raise as an unreachable database until `recovered` is set."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.recovered = asyncio.Event()
        self.handled: list[str] = []
        self.busy = 0
        self.most_busy = 0

    async def handle(self, message: Message) -> str:
        assert isinstance(message, DeliverEvent)
        key = message.event_record_id
        if key in self.failing and not self.recovered.is_set():
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("the database is down"))
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        await asyncio.sleep(0.05)
        self.busy -= 1
        self.handled.append(key)
        return "delivered"


async def _worker(settings: Settings, dispatcher: Dispatcher, concurrency: int) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(kafka.consumer(settings), dispatcher, concurrency, retry_base_seconds=0.1)
    worker.consumer.subscribe([settings.execution_topic], listener=worker.rebalance_listener)
    await worker.consumer.start()
    return worker, asyncio.create_task(worker.run())


async def _send(settings: Settings, partition_keys: list[tuple[int, str]]) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for partition, key in partition_keys:
            message = encode_message(DeliverEvent(key))
            await producer.send_and_wait(settings.execution_topic, message, partition=partition)
    finally:
        await producer.stop()


async def _stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stopping.set()
    await asyncio.wait_for(task, 30)
    await worker.consumer.stop()


async def test_a_message_waiting_for_the_database_pauses_its_partition_and_holds_no_slot(
    settings: Settings,
) -> None:
    await kafka.ensure_topics(settings)
    waiting = {f"p0-{i}" for i in range(4)}  # more than the worker's slots
    dispatcher = ScriptedDispatcher(waiting)
    await _send(settings, [(0, key) for key in sorted(waiting)] + [(0, "p0-after")])
    await _send(settings, [(1, f"p1-{i}") for i in range(30)])
    worker, task = await _worker(settings, dispatcher, concurrency=2)
    try:
        await wait_for(lambda: _handled(dispatcher, 30), timeout=30)  # partition 1 flows meanwhile
        assert not waiting & set(dispatcher.handled) and "p0-after" not in dispatcher.handled
        dispatcher.recovered.set()
        await wait_for(lambda: _handled(dispatcher, 35), timeout=30)
    finally:
        await _stop(worker, task)
    assert sorted(dispatcher.handled) == sorted([*waiting, "p0-after", *(f"p1-{i}" for i in range(30))])
    assert dispatcher.most_busy <= 2


async def _handled(dispatcher: ScriptedDispatcher, n: int) -> bool:
    return len(dispatcher.handled) >= n


class SlowDispatcher(ScriptedDispatcher):
    async def handle(self, message: Message) -> str:
        await asyncio.sleep(2)
        return await super().handle(message)


async def test_a_rebalance_while_messages_are_in_flight_loses_no_bookkeeping(settings: Settings) -> None:
    """A partition taken away while its message is in flight: the message finishes without error, and the
    worker keeps committing the partitions it keeps."""
    await kafka.ensure_topics(settings)
    await _send(settings, [(p, f"first-{p}") for p in range(4)])
    slow = SlowDispatcher(set())
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    first, first_task = await _worker(settings, slow, concurrency=8)
    try:
        await wait_for(lambda: _taken(first), timeout=30)
        other = SlowDispatcher(set())
        second, second_task = await _worker(settings, other, concurrency=8)  # joins: partitions move
        try:
            await wait_for(lambda: _handled_both(slow, other, 4), timeout=60)
            await _send(settings, [(p, f"then-{p}") for p in range(4)])
            await wait_for(lambda: _handled_both(slow, other, 8), timeout=60)
        finally:
            await _stop(second, second_task)
    finally:
        await _stop(first, first_task)
        asyncio.get_running_loop().set_exception_handler(None)
    handled = slow.handled + other.handled
    assert {f"first-{p}" for p in range(4)} | {f"then-{p}" for p in range(4)} <= set(handled)
    assert not errors, errors


async def _taken(worker: Worker) -> bool:
    return bool(worker._busy)


async def _handled_both(one: ScriptedDispatcher, other: ScriptedDispatcher, n: int) -> bool:
    return len(set(one.handled + other.handled)) >= n
