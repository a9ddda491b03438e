"""The topic ring keeps what the embedded broker holds bounded: slots are emptied once handled, never before."""

import asyncio
import time
from dataclasses import replace

import httpx
import pytest
from aiokafka import TopicPartition

from app.adapters import kafka
from app.adapters.messages import lane_topics
from app.adapters.store import OutboxMessage
from app.adapters.topic_ring import RING_SLOTS, TopicRing
from app.container import Container
from app.settings import Settings
from app.worker.ring_keeper import RingKeeper
from tests.helpers import count, finished, start_roles, start_test_run, stop_roles, wait_for

PERIOD = 2.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, topic_ring_seconds=PERIOD)


def test_a_topic_is_written_as_each_slot_in_turn() -> None:
    ring = TopicRing(10)
    assert [ring.current("t", now) for now in (0, 9.9, 10, 25, 31)] == ["t.r0", "t.r0", "t.r1", "t.r2", "t.r0"]
    assert ring.upcoming("t", 25) == "t.r0"
    assert ring.topics("t") == ["t.r0", "t.r1", "t.r2"]
    assert TopicRing(0).current("t") == "t" and TopicRing(0).topics("t") == ["t"]


async def _held(settings: Settings) -> int:
    """How many messages the broker holds in the ring of the execution lane."""
    offsets = kafka.OffsetsReader(settings)
    await offsets.start()
    try:
        held = 0
        for topic in kafka.consumed_topics(settings, settings.execution_topic):
            for partition in range(settings.topic_partitions):
                held += len(await offsets.outbox_ids(TopicPartition(topic, partition), 0))
        return held
    finally:
        await offsets.stop()


async def test_runs_flow_through_the_ring_and_emptied_slots_hold_nothing_old(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    run_ids = []
    began = time.monotonic()
    while time.monotonic() - began < 2 * RING_SLOTS * PERIOD:  # the ring goes round twice
        run_ids.append(await start_test_run(api, "return-value", {"n": len(run_ids)}))
        await asyncio.sleep(0.05)
    for run_id in run_ids:
        assert (await finished(api, run_id))["status"] == "SUCCESS"
    # However long the wait above took, the slot being written now holds the last run's message.
    run_ids.append(await start_test_run(api, "return-value", {"n": len(run_ids)}))
    assert (await finished(api, run_ids[-1]))["status"] == "SUCCESS"
    held = await _held(settings)
    assert 0 < held < len(run_ids) / 2, (held, len(run_ids))  # older slots were emptied: it held no more


async def test_a_slot_whose_messages_wait_to_be_handled_is_not_emptied(
    container: Container, settings: Settings
) -> None:
    """Messages published to every slot and not consumed: the keeper leaves them all where they are."""
    relay = await start_roles(settings, "relay")
    try:
        lane = lane_topics(settings.execution_topic)[1]
        published = 0
        began = time.monotonic()
        while time.monotonic() - began < RING_SLOTS * PERIOD * 1.5:
            async with container.store.transaction() as uow:
                await uow.enqueue(OutboxMessage(lane, "k", b"v", {"type": "Probe"}))
            published += 1
            await asyncio.sleep(0.05)
        await wait_for(lambda: _all_published(container), timeout=30)
        ring = kafka.ring(settings)
        keeper = RingKeeper(container.outbox, settings.required_kafka, ring, [lane], settings.topic_partitions)
        await keeper.start()
        try:
            for _ in range(int(RING_SLOTS * PERIOD / 0.1)):
                await keeper.tick()
                await asyncio.sleep(0.1)
        finally:
            await keeper.stop()
        assert keeper.recycled == 0
        assert await _held(settings) == published
    finally:
        await stop_roles(relay)


async def _all_published(container: Container) -> bool:
    return await count(container.engine, "outbox", "published_at IS NULL") == 0
