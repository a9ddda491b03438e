import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from app.adapters import kafka
from app.adapters.outbox import _ACKNOWLEDGE, Outbox, Published
from app.adapters.store import EventStore, OutboxMessage
from app.settings import Settings
from relay.outbox_relay import OutboxRelay
from tests.helpers import count, wait_for


@pytest.fixture
async def topic(settings: Settings) -> str:
    await kafka.ensure_topics(settings)
    return settings.execution_topic


async def enqueue(store: EventStore, topic: str, n: int) -> None:
    async with store.transaction() as uow:
        await uow.enqueue(*(OutboxMessage(topic, f"run-{i}", f"value-{i}".encode(), {"type": "T"}) for i in range(n)))


@pytest.fixture
async def consumer(settings: Settings, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = kafka.consumer(settings, topic)
    await consumer.start()
    yield consumer
    await consumer.stop()


async def consume(consumer: AIOKafkaConsumer, n: int) -> list[tuple[str, str, dict[str, str]]]:
    return [(key, value, headers) for key, value, headers, _ in await consume_at(consumer, n)]


async def consume_at(consumer: AIOKafkaConsumer, n: int) -> list[tuple[str, str, dict[str, str], tuple[Any, ...]]]:
    """The next n records: key, value, headers, and where each was (topic, partition, offset)."""
    received: list[tuple[str, str, dict[str, str], tuple[Any, ...]]] = []
    async with asyncio.timeout(30):
        while len(received) < n:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    place = (r.topic, r.partition, r.offset)
                    received.append(((r.key or b"").decode(), (r.value or b"").decode(), headers, place))
    return received


async def test_two_relays_publish_each_row_once_and_record_where_it_went(
    settings: Settings, store: EventStore, topic: str, consumer: AIOKafkaConsumer
) -> None:
    await enqueue(store, topic, 300)
    producers = [kafka.producer(settings), kafka.producer(settings)]
    for producer in producers:
        await producer.start()
    try:
        relays = [OutboxRelay(Outbox(store.engine), p, batch_size=40) for p in producers]

        async def drain(relay: OutboxRelay) -> None:
            while await relay.publish_batch():
                pass

        await asyncio.gather(*(drain(r) for r in relays))
    finally:
        for producer in producers:
            await producer.stop()
    assert all(r.published > 0 for r in relays), [r.published for r in relays]
    assert sum(r.published for r in relays) == 300
    assert await count(store.engine, "outbox", "published_at IS NULL") == 0
    received = await consume_at(consumer, 300)
    assert await consumer.getmany(timeout_ms=500) == {}
    assert len(received) == 300
    ids = [headers["id"] for _, _, headers, _ in received]
    assert len(set(ids)) == 300
    assert all(headers["type"] == "T" for _, _, headers, _ in received)
    assert {(key, value) for key, value, _, _ in received} == {(f"run-{i}", f"value-{i}") for i in range(300)}
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, kafka_topic, kafka_partition, kafka_offset FROM outbox"))
        recorded = {str(id_): (topic_, partition, offset) for id_, topic_, partition, offset in rows}
    assert recorded == {headers["id"]: place for _, _, headers, place in received}
    await Outbox(store.engine).acknowledge([int(i) for i in ids])  # what a worker does once it handled them
    assert await count(store.engine, "outbox") == 0


async def test_rows_due_later_wait_in_the_outbox(settings: Settings, store: EventStore, topic: str) -> None:
    async with store.transaction() as uow:
        await uow.enqueue(OutboxMessage(topic, "k", b"v", available_at=datetime.now(UTC) + timedelta(hours=1)))
    producer = kafka.producer(settings)
    await producer.start()
    try:
        assert await OutboxRelay(Outbox(store.engine), producer).publish_batch() == 0
    finally:
        await producer.stop()
    assert await count(store.engine, "outbox") == 1


async def test_the_running_relay_wakes_on_notify(
    settings: Settings, store: EventStore, topic: str, consumer: AIOKafkaConsumer
) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    relay = OutboxRelay(Outbox(store.engine), producer, poll_seconds=600)  # only a NOTIFY can wake it in time
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # let it LISTEN and go idle
        await enqueue(store, topic, 3)
        received = await consume(consumer, 3)
        assert sorted(key for key, _, _ in received) == ["run-0", "run-1", "run-2"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


async def test_an_execution_carries_its_tags_as_a_header_on_its_priority_lane(
    settings: Settings, store: EventStore, consumer: AIOKafkaConsumer
) -> None:
    from app.adapters.messages import lane_topics
    from app.service.writes import Topics
    from domain.runs import JobRun

    run = JobRun(
        id=uuid4(),
        environment_id=str(uuid4()),
        endpoint_id="e",
        job_slug="j",
        job_version="1",
        event_record_id="r",
        is_test=False,
        tags=["blue", "fast"],
        priority=3,
    )
    message = Topics(settings.execution_topic).execution(run, 1)
    assert message.topic == lane_topics(settings.execution_topic)[0]
    async with store.transaction() as uow:
        await uow.enqueue(message)
    high = kafka.consumer(settings, message.topic)
    await high.start()
    producer = kafka.producer(settings)
    await producer.start()
    try:
        assert await OutboxRelay(Outbox(store.engine), producer).publish_batch() == 1
        (received,) = await consume(high, 1)
    finally:
        await producer.stop()
        await high.stop()
    key, _, headers = received
    assert (key, headers["type"], headers["tags"]) == (str(run.id), "ExecuteJobRun", "blue,fast")


async def test_a_relay_keeps_at_most_max_in_flight_messages_published_and_not_handled(
    settings: Settings, store: EventStore, topic: str, consumer: AIOKafkaConsumer
) -> None:
    outbox = Outbox(store.engine)
    await enqueue(store, topic, 100)
    producer = kafka.producer(settings)
    await producer.start()
    relay = OutboxRelay(outbox, producer, batch_size=40, poll_seconds=0.2, max_in_flight=30)
    running = asyncio.create_task(relay.run())

    async def published() -> list[int]:
        async with store.engine.connect() as conn:
            return list((await conn.execute(text("SELECT id FROM outbox WHERE published_at IS NOT NULL"))).scalars())

    try:
        await wait_for(lambda: _true(relay.held_back))
        assert len(await published()) == relay.published == 30  # a batch of 40 was cut to the room left
        assert await count(store.engine, "outbox", "published_at IS NULL") == 70
        handled = 0
        while handled < 100:  # a worker handles what it holds: the relay publishes as much again
            rows = await wait_for(published)
            assert len(rows) <= 30
            await outbox.acknowledge(rows)
            handled += len(rows)
        assert relay.published == 100
    finally:
        running.cancel()
        await producer.stop()
    received = await consume_at(consumer, 100)
    assert len({headers["id"] for _, _, headers, _ in received}) == 100


async def _true(value: bool) -> bool:
    return value


async def test_marking_published_and_acknowledging_commit_without_waiting_for_the_disk(
    store: EventStore, topic: str
) -> None:
    """Each statement turns synchronous_commit off for its own transaction (no SET LOCAL round trip before it)."""
    setting = text("SELECT current_setting('synchronous_commit')")
    await enqueue(store, topic, 2)
    outbox = Outbox(store.engine)
    async with outbox.claim(10) as claim:
        assert await claim.conn.fetchval(str(setting)) == "on"
        first, second = claim.rows
        await claim.published([Published(first.id, topic, 0, 7), Published(second.id, topic, 0, 8)])
        assert await claim.conn.fetchval(str(setting)) == "off"
    async with store.engine.connect() as conn:
        assert (await conn.execute(setting)).scalar() == "on"  # only that transaction's
        marked = (await conn.execute(text("SELECT count(*) FROM outbox WHERE kafka_offset IN (7, 8)"))).scalar()
    assert marked == 2
    await outbox.acknowledge([first.id])
    async with store.engine.begin() as conn:  # the same statement, in a transaction that shows its setting
        await conn.execute(_ACKNOWLEDGE, {"ids": [second.id]})
        assert (await conn.execute(setting)).scalar() == "off"
    assert await count(store.engine, "outbox") == 0
