"""The broker and the database go away under load and come back; every accepted run still completes."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.adapters.db import migrate
from app.container import Container
from app.service.writes import RunWriter, Topics
from app.settings import Settings
from app.tools.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from domain.environments import EnvironmentType
from domain.runs import JobRun
from domain.status import RunStatus
from tests.faults.conftest import register_endpoint
from tests.faults.harness import cluster, tally
from tests.helpers import count, finished, start_test_run
from tests.http_peer import CallbackReceiver
from tests.node_endpoint import COMPAT_API_KEY, NodeEndpoint


@pytest.fixture
def own_kafka() -> Iterator[EmbeddedKafka]:
    with EmbeddedKafka(port=free_port()) as broker:
        yield broker


@pytest.fixture
def on_own_broker(settings: Settings, own_kafka: EmbeddedKafka) -> Settings:
    """The test's settings, on a broker of its own (the test restarts it)."""
    return replace(settings, kafka_bootstrap_servers=own_kafka.bootstrap_servers)


async def test_restart_the_broker_while_runs_are_queued(
    on_own_broker: Settings,
    logs: Path,
    client: httpx.AsyncClient,
    compat_endpoint: NodeEndpoint,
    own_kafka: EmbeddedKafka,
    container: Container,
) -> None:
    with cluster(on_own_broker, logs) as roles:
        roles.start("api")
        roles.start("relay")
        await register_endpoint(client, compat_endpoint)
        run_ids = [await start_test_run(client, "return-value", {"i": i}) for i in range(20)]
        async with asyncio.timeout(30):  # the relay handed every run to the broker
            while await count(container.engine, "outbox", "published_at IS NULL"):
                await asyncio.sleep(0.1)
        own_kafka.stop()
        own_kafka.start()  # it comes back empty: the queued executions are gone
        restarted = time.monotonic()
        worker = roles.start("worker")
        async with asyncio.timeout(120):
            for run_id in run_ids:
                await finished(client, run_id, timeout=120)
        recovery = time.monotonic() - restarted
        result = await tally(client, run_ids)
        requeued = [await _types(client, run_id) for run_id in run_ids]
    print("\n" + result.row("broker restart with runs queued", recovery))
    assert result.statuses == {"SUCCESS": 20}
    assert (result.completed, result.duplicates) == (20, 0)
    assert not any("RunRequeued" in types for types in requeued)  # each message was published again, as it was
    assert "are not in the broker" in worker.log.read_text()


async def test_every_kind_of_message_the_broker_lost_is_published_again(
    on_own_broker: Settings,
    logs: Path,
    client: httpx.AsyncClient,
    compat_endpoint: NodeEndpoint,
    own_kafka: EmbeddedKafka,
    container: Container,
) -> None:
    """An execution, a scheduled event's delivery and a run notification, all published, then lost."""
    async with CallbackReceiver() as receiver:
        with cluster(on_own_broker, logs) as roles:
            roles.start("api")
            roles.start("relay")
            await register_endpoint(client, compat_endpoint)
            executed = await start_test_run(client, "return-value", {"kind": "execution"})
            later = {"event": {"id": "later", "name": "compat.return", "payload": {}}, "options": {"deliverAfter": 1}}
            assert (await client.post("/api/v1/events", json=later)).status_code == 200
            invoke = {"payload": {}, "options": {"callbackUrl": receiver.url("/callback")}}
            notified = (await client.post("/api/v1/jobs/return-value/invoke", json=invoke)).json()["id"]
            await _end_as_a_worker_would(container, on_own_broker, notified)  # its notification goes to the outbox
            async with asyncio.timeout(30):
                while await count(container.engine, "outbox", "published_at IS NULL"):
                    await asyncio.sleep(0.1)
            kinds = await _published_kinds(container)
            assert {"ExecuteJobRun", "DeliverEvent", "NotifyRun"} <= kinds, kinds
            own_kafka.stop()
            own_kafka.start()  # it comes back empty
            worker = roles.start("worker")
            assert (await finished(client, executed, timeout=60))["status"] == "SUCCESS"
            async with asyncio.timeout(60):
                while not (runs := (await client.get("/api/v2/events/later")).json()["runs"]):
                    await asyncio.sleep(0.2)
            assert (await finished(client, runs[0]["id"], timeout=60))["status"] == "SUCCESS"
            async with asyncio.timeout(60):
                while not receiver.received:
                    await asyncio.sleep(0.2)
    assert "are not in the broker" in worker.log.read_text()


async def _end_as_a_worker_would(container: Container, settings: Settings, run_id: str) -> None:
    run = await container.store.get(uuid.UUID(run_id), JobRun)
    assert run is not None
    now = datetime.now(UTC)
    run.start(1, now, timedelta(seconds=30))
    run.complete(RunStatus.SUCCESS, output={"ended": "here"})
    await RunWriter(container.store, Topics(settings.execution_topic)).commit(run)


async def _published_kinds(container: Container) -> set[str]:
    async with container.engine.connect() as conn:
        return set((await conn.execute(text("SELECT DISTINCT headers ->> 'type' FROM outbox"))).scalars())


async def _types(client: httpx.AsyncClient, run_id: str) -> list[str]:
    return [event["type"] for event in (await client.get(f"/api/v1/runs/{run_id}/events")).json()["events"]]


async def test_stop_postgresql_under_load(
    settings: Settings, logs: Path, tmp_path: Path, compat_endpoint: NodeEndpoint
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pg", port=free_port())
    postgres.start()
    try:
        await migrate(postgres.url)
        own = replace(settings, database_url=postgres.url, execution_topic=f"db-stop-{uuid.uuid4().hex[:6]}")
        setup = Container.create(own)
        await setup.service.environments.create("test", EnvironmentType.DEVELOPMENT, COMPAT_API_KEY)
        await setup.close()
        headers = {"Authorization": f"Bearer {COMPAT_API_KEY}"}
        with cluster(own, logs) as roles:
            roles.start("api")
            roles.start("relay")
            roles.start("worker")
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{own.port}", headers=headers, timeout=15
            ) as client:
                await register_endpoint(client, compat_endpoint)
                accepted, answers, recovery = await _submit_through_an_outage(client, postgres)
                async with asyncio.timeout(120):
                    for run_id in accepted:
                        await finished(client, run_id, timeout=120)
                result = await tally(client, accepted)
    finally:
        postgres.stop()
    print(f"\nFAULT PostgreSQL stop: answers during the run {answers}")
    print(result.row("PostgreSQL stopped under load", recovery))
    assert answers.get(503, 0) > 0, "the outage was not seen"
    assert set(answers) <= {202, 503}, answers
    assert result.statuses == {"SUCCESS": len(accepted)}
    assert result.duplicates == 0


async def _submit_through_an_outage(
    client: httpx.AsyncClient, postgres: EmbeddedPostgres
) -> tuple[list[str], dict[int, int], float]:
    """Submit TestJobs at a steady pace for a while; PostgreSQL stops after 2 s and starts 3 s later."""
    accepted: list[str] = []
    answers: dict[int, int] = {}
    started = time.monotonic()
    stopped_at = restarted_at = recovered_at = None
    while time.monotonic() - started < 10 or recovered_at is None:
        elapsed = time.monotonic() - started
        if stopped_at is None and elapsed > 2:
            postgres.stop()
            stopped_at = time.monotonic()
        if stopped_at is not None and restarted_at is None and time.monotonic() - stopped_at > 3:
            postgres.start()
            restarted_at = time.monotonic()
        response = await client.post("/api/v1/jobs/return-value/test", json={"payload": {"n": len(accepted)}})
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        if response.status_code == 202:
            accepted.append(response.json()["runId"])
            if restarted_at is not None and recovered_at is None:
                recovered_at = time.monotonic()
        else:
            assert "database" in response.json()["message"], response.text
        assert elapsed < 60, "the API did not recover"
        await asyncio.sleep(0.05)
    assert stopped_at is not None and recovered_at is not None
    return accepted, answers, recovered_at - stopped_at
