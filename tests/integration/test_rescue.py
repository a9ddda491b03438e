"""Lag is not loss: a message waiting in the broker is never published again, however long it waits; one the
consumer group went past without handling it is."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from app.adapters import kafka
from app.adapters.messages import lane_topics
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from app.worker.rescuer import Rescuer
from tests.helpers import count, finished, start_roles, start_test_run, stop_roles, wait_for
from tests.node_endpoint import NodeEndpoint

RUNS = 30


@pytest.fixture
async def no_worker(
    container: Container, settings: Settings, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> AsyncIterator[httpx.AsyncClient]:
    """The API and the relay, and no worker: every message waits in the broker."""
    roles = await start_roles(settings, "api", "relay")
    headers = {"Authorization": f"Bearer {environment.api_key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", headers=headers, timeout=30) as api:
        registered = await api.post(
            "/api/v1/endpoints", json={"id": compat_endpoint.endpoint_id, "url": compat_endpoint.url}
        )
        assert registered.status_code == 200, registered.text
        yield api
    await stop_roles(roles)


@pytest.fixture
async def rescuer(container: Container, settings: Settings) -> AsyncIterator[Rescuer]:
    offsets = kafka.OffsetsReader(settings)
    await offsets.start()
    lanes = list(lane_topics(settings.execution_topic))
    yield Rescuer(container.service, container.outbox, 0.1, 1.0, offsets, lambda: lanes)
    await offsets.stop()


async def _published(api: httpx.AsyncClient, container: Container) -> list[str]:
    run_ids = [await start_test_run(api, "return-value", {"i": i}) for i in range(RUNS)]
    await wait_for(lambda: _none_unpublished(container), timeout=30)
    return run_ids


async def _none_unpublished(container: Container) -> bool:
    return await count(container.engine, "outbox", "published_at IS NULL") == 0


async def test_messages_waiting_for_a_consumer_are_never_published_again(
    no_worker: httpx.AsyncClient, container: Container, settings: Settings, rescuer: Rescuer
) -> None:
    run_ids = await _published(no_worker, container)
    for _ in range(100):  # 100 sweeps over 10 s, ten times the grace of a run with no message at all
        await rescuer.sweep()
        await asyncio.sleep(0.1)
    assert (rescuer.republished, rescuer.requeued, rescuer.rescued) == (0, 0, 0)
    assert await count(container.engine, "outbox", "published_at IS NOT NULL") == RUNS
    await _each_executes_once(no_worker, container, settings, run_ids)  # the consumer catches up
    assert await count(container.engine, "events", "topic = 'jobs.JobRun.RunRequeued'") == 0


async def test_a_message_the_group_went_past_without_handling_it_is_published_again(
    no_worker: httpx.AsyncClient, container: Container, settings: Settings, rescuer: Rescuer
) -> None:
    run_ids = await _published(no_worker, container)
    async with container.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT kafka_topic, kafka_partition, max(kafka_offset) FROM outbox GROUP BY 1, 2")
        )
        past = {TopicPartition(topic, partition): last + 1 for topic, partition, last in rows}
    member = kafka.consumer(settings, *lane_topics(settings.execution_topic))
    await member.start()
    try:  # a member of the workers' group commits past every message and handles none (a bug, a reset...)
        await wait_for(lambda: _assigned(member), timeout=30)
        await member.commit(past)
    finally:
        await member.stop()
    assert await rescuer.republish_lost_messages() == RUNS
    assert await rescuer.republish_lost_messages() == 0  # published again once, not once per sweep
    await _each_executes_once(no_worker, container, settings, run_ids)


async def _each_executes_once(
    api: httpx.AsyncClient, container: Container, settings: Settings, run_ids: list[str]
) -> None:
    """A worker starts: every run succeeds, each with one execution."""
    worker = await start_roles(settings, "worker")
    try:
        for run_id in run_ids:
            assert (await finished(api, run_id))["status"] == "SUCCESS"
    finally:
        await stop_roles(worker)
    assert await count(container.engine, "events", "topic = 'jobs.JobRun.RunStarted'") == len(run_ids)


async def _assigned(member: AIOKafkaConsumer) -> bool:
    return bool(member.assignment())
