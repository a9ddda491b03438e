import asyncio
from dataclasses import replace
from uuid import UUID

import pytest
from sqlalchemy import text

from app.adapters import kafka
from app.adapters.messages import dead_letter_topic, encode_message
from app.container import Container
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from app.worker.consumer import DeadLetters, Dispatcher, Worker
from app.worker.executor import RunExecutor
from app.worker.notifier import Notifier
from domain.runs import JobRun
from domain.status import RunStatus
from tests.helpers import count, outbox_messages, register, wait_for
from tests.node_endpoint import NodeEndpoint


@pytest.fixture
async def executor(container: Container, settings: Settings) -> RunExecutor:
    return RunExecutor(container.service, container.endpoint_client)


async def event_types(container: Container, run_id: UUID) -> list[str]:
    return [type(e).__name__ for e in await container.store.load_events(run_id)]


async def test_a_run_that_returns_succeeds_with_its_output(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint, executor: RunExecutor
) -> None:
    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "return-value", {"hello": "world"}, None)
    (message,) = await outbox_messages(container.engine)
    assert await executor.handle(message) == "completed"
    run = await container.store.get(created.run_id, JobRun)
    assert run is not None
    assert run.status is RunStatus.SUCCESS
    assert run.output == {"ok": True, "echo": {"hello": "world"}}
    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM run_status WHERE id = :id"), {"id": created.run_id})).one()
    assert (row.status, row.attempt, row.output) == ("SUCCESS", 1, run.output)
    assert row.started_at <= row.completed_at == row.updated_at


async def test_a_run_that_throws_fails_with_the_error(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint, executor: RunExecutor
) -> None:
    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "throws", None, None)
    (message,) = await outbox_messages(container.engine)
    await executor.handle(message)
    run = await container.store.get(created.run_id, JobRun)
    assert run is not None and run.status is RunStatus.FAILURE
    assert run.error is not None
    assert run.error["message"] == "boom from compat job"
    assert run.error["name"] == "Error"


async def test_an_invalid_payload_ends_the_run_as_invalid_payload(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint, executor: RunExecutor
) -> None:
    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "with-schema", {"n": "x"}, None)
    (message,) = await outbox_messages(container.engine)
    await executor.handle(message)
    run = await container.store.get(created.run_id, JobRun)
    assert run is not None and run.status is RunStatus.INVALID_PAYLOAD
    assert run.error is not None and run.error["errors"][0]["path"] == ["n"]


async def test_the_same_message_twice_completes_the_run_once(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint, executor: RunExecutor
) -> None:
    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "return-value", {}, None)
    (message,) = await outbox_messages(container.engine)
    outcomes = await asyncio.gather(executor.handle(message), executor.handle(message))
    assert sorted(outcomes) == ["completed", "duplicate"]
    assert await executor.handle(message) == "duplicate"
    assert await event_types(container, created.run_id) == ["RunCreated", "RunStarted", "RunCompleted"]


async def test_a_worker_in_the_consumer_group_skips_a_redelivered_message(
    container: Container,
    settings: Settings,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
    executor: RunExecutor,
) -> None:
    await register(container, environment, compat_endpoint)
    created = await container.service.runs.test(environment, "return-value", {}, None)
    (message,) = await outbox_messages(container.engine)
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    for _ in range(2):  # the relay published it, then published it again after a crash
        await producer.send_and_wait(settings.execution_topic, encode_message(message), key=message.run_id.encode())
    await producer.send_and_wait(settings.execution_topic, b"not a message", key=b"junk")
    consumer = kafka.consumer(settings, settings.execution_topic)
    await consumer.start()
    notifier = Notifier(container.service, container.endpoint_client)
    dead_letters = DeadLetters(producer, dead_letter_topic(settings.execution_topic))
    dispatcher = Dispatcher(container.service, executor, notifier)
    worker = Worker(consumer, dispatcher, concurrency=8, dead_letters=dead_letters)
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _handled(executor, worker), timeout=60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    assert executor.counts == {"completed": 1, "duplicate": 1}
    assert worker.malformed == 1
    dlq = kafka.consumer(replace(settings, consumer_group="dlq-reader"), dead_letter_topic(settings.execution_topic))
    await dlq.start()
    try:
        batches = await wait_for(lambda: dlq.getmany(timeout_ms=500), timeout=30)
    finally:
        await dlq.stop()
    (dead,) = [record for records in batches.values() for record in records]
    assert (dead.key, dead.value) == (b"junk", b"not a message")
    assert dict(dead.headers)["source-topic"] == settings.execution_topic.encode()
    assert await event_types(container, created.run_id) == ["RunCreated", "RunStarted", "RunCompleted"]
    assert await count(container.engine, "run_status", "status = 'SUCCESS'") == 1


async def _handled(executor: RunExecutor, worker: Worker) -> bool:
    return sum(executor.counts.values()) == 2 and worker.malformed == 1
