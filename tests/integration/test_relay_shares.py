"""Relays that share the outbox: each claims its own share of the rows, and the share of a relay that dies or
stops is still published by the others."""

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters import kafka
from app.adapters.outbox import Outbox
from app.adapters.relay_shares import RelayShares
from app.adapters.store import EventStore
from app.settings import Settings
from relay.outbox_relay import OutboxRelay
from tests.helpers import count, wait_for
from tests.integration.test_relay import enqueue


@pytest.fixture
async def topic(settings: Settings) -> str:
    await kafka.ensure_topics(settings)
    return settings.execution_topic


@pytest.fixture
def namespace() -> int:
    """Advisory-lock keys of this test's relays alone."""
    return random.randrange(1_000_000, 2_000_000_000)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = kafka.producer(settings)
    await producer.start()
    yield producer
    await producer.stop()


async def published_ids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        return set((await conn.execute(text("SELECT id FROM outbox WHERE published_at IS NOT NULL"))).scalars())


async def all_ids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        return set((await conn.execute(text("SELECT id FROM outbox"))).scalars())


async def test_live_relays_each_publish_their_own_share(
    store: EventStore, topic: str, producer: AIOKafkaProducer, namespace: int
) -> None:
    members = [RelayShares(store.engine, namespace=namespace) for _ in range(2)]
    try:
        shares = [await member.refresh() for member in members]
        shares = [await member.refresh() for member in members]  # each sees the other now
        assert sorted((share.position, share.count) for share in shares) == [(0, 2), (1, 2)]
        await enqueue(store, topic, 60)
        ids = await all_ids(store.engine)
        first = OutboxRelay(Outbox(store.engine), producer, batch_size=500, shares=members[0])
        await first.refresh_share()
        assert await first.publish_batch() == len([i for i in ids if i % 2 == shares[0].position])
        assert await published_ids(store.engine) == {i for i in ids if i % 2 == shares[0].position}
        second = OutboxRelay(Outbox(store.engine), producer, batch_size=500, shares=members[1])
        await second.refresh_share()
        assert await second.publish_batch() == 60 - first.published
        assert await published_ids(store.engine) == ids
    finally:
        for member in members:
            await member.close()


async def test_a_dead_relays_share_is_published_by_the_live_one(
    store: EventStore, topic: str, producer: AIOKafkaProducer, namespace: int
) -> None:
    dead = RelayShares(store.engine, namespace=namespace)
    live = RelayShares(store.engine, grace_seconds=3600.0, namespace=namespace)  # only seeing it gone can help
    await dead.refresh()
    relay = OutboxRelay(Outbox(store.engine), producer, poll_seconds=0.2, shares=live)
    await relay.refresh_share()
    assert relay.share.count == 2
    await enqueue(store, topic, 40)
    async with store.engine.connect() as conn:  # the other relay's process is killed: its session ends
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
                "AND classid::bigint = :namespace AND objid::bigint = :slot"
            ),
            {"namespace": namespace, "slot": dead.slot},
        )
    running = asyncio.create_task(relay.run())
    try:
        await wait_for(lambda: _all_published(store.engine))
        assert relay.published == 40
        assert relay.share.count == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await dead.close()
    assert await count(store.engine, "outbox", "published_at IS NULL") == 0


async def test_a_stuck_relays_share_is_published_by_another_after_the_grace(
    store: EventStore, topic: str, producer: AIOKafkaProducer, namespace: int
) -> None:
    stuck = RelayShares(store.engine, namespace=namespace)  # holds its slot and publishes nothing
    live = RelayShares(store.engine, grace_seconds=0.3, namespace=namespace)
    await stuck.refresh()
    relay = OutboxRelay(Outbox(store.engine), producer, poll_seconds=0.2, shares=live)
    running = asyncio.create_task(relay.run())
    try:
        await wait_for(lambda: _true(relay.share.count == 2))
        await enqueue(store, topic, 40)
        await wait_for(lambda: _all_published(store.engine))
        assert relay.published == 40
        assert relay.share.count == 2  # the other relay was still there: the grace, not the membership
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await stuck.close()


async def test_a_relay_that_stops_leaves_its_slot(store: EventStore, namespace: int) -> None:
    first, second = RelayShares(store.engine, namespace=namespace), RelayShares(store.engine, namespace=namespace)
    await first.refresh()
    assert (await second.refresh()).count == 2
    await first.close()
    share = await second.refresh()
    assert (share.position, share.count) == (0, 1)
    await second.close()


async def _all_published(engine: AsyncEngine) -> bool:
    return await count(engine, "outbox", "published_at IS NULL") == 0 and await count(engine, "outbox") > 0


async def _true(value: bool) -> bool:
    return value


async def test_a_relay_finding_every_due_row_held_by_another_waits_instead_of_claiming_again(
    store: EventStore, topic: str, producer: AIOKafkaProducer
) -> None:
    from relay.outbox_relay import CONTENDED_POLL_SECONDS

    await enqueue(store, topic, 5)
    outbox = Outbox(store.engine)
    relay = OutboxRelay(outbox, producer, poll_seconds=1.0)
    async with outbox.claim(500) as held:  # another relay, publishing them
        assert len(held.rows) == 5
        assert await relay.publish_batch() == 0
        assert await relay._idle_seconds(claimed_none=True) == CONTENDED_POLL_SECONDS
    assert await relay.publish_batch() == 5
