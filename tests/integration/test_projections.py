from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.container import Container
from app.service.environments import EnvironmentInfo
from app.worker.executor import RunExecutor
from domain.runs import JobRun
from domain.status import RunStatus
from projections.rebuild import rebuild
from projections.tables import READ_MODELS
from tests.helpers import outbox_messages, register
from tests.node_endpoint import NodeEndpoint


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(row) for row in await conn.execute(select(table))),
                key=repr,
            )
            for table in READ_MODELS
        }


async def test_a_rebuild_gives_exactly_the_live_rows(
    container: Container, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    await register(container, environment, compat_endpoint)  # re-indexing updates rows in place
    for job in ("return-value", "throws", "return-value", "with-schema"):
        await container.service.runs.test(environment, job, {"n": 1}, None)
    executor = RunExecutor(container.service, container.endpoint_client)
    for message in (await outbox_messages(container.engine))[:3]:  # the last run stays QUEUED
        await executor.handle(message)
    live = await snapshot(container.engine)
    assert len(live["run_status"]) == 4
    assert {row[5] for row in live["run_status"]} == {"SUCCESS", "FAILURE", "QUEUED"}

    seen: list[tuple[int, int]] = []
    replayed = await rebuild(
        container.engine, container.store.read_all_fields, lambda done, total: seen.append((done, total))
    )

    assert await snapshot(container.engine) == live
    assert replayed == len(await container.store.read_all(limit=10_000))
    assert seen and seen[-1] == (replayed, replayed)


async def test_many_changes_of_one_shape_in_one_transaction_give_the_rows_a_rebuild_gives(
    container: Container,
) -> None:
    """A shared transaction applies each shape of change to all its rows in one statement (from arrays)."""
    now = datetime.now(UTC)
    runs = []
    for n in range(5):
        run = JobRun(
            id=uuid4(),
            environment_id=str(uuid4()),
            endpoint_id=str(uuid4()),
            job_slug=f"job-{n}",
            job_version="1.0.0",
            event_record_id=str(uuid4()),
            is_test=n % 2 == 0,
            tags=[f"t{n}"],
        )
        if n < 4:
            run.start(1, now, timedelta(seconds=60))
        if n < 2:
            run.complete(RunStatus.SUCCESS, {"n": n} if n else None)
        runs.append(run)
    async with container.store.transaction() as uow:
        await uow.save(*runs)
    live = await snapshot(container.engine)
    by_id = {row[0]: row for row in live["run_status"]}
    assert [by_id[run.id][5] for run in runs] == ["SUCCESS", "SUCCESS", "EXECUTING", "EXECUTING", "QUEUED"]
    positions = [position for position, _ in await container.store.read_all(limit=100)]
    assert positions == sorted(positions) and len(positions) == 5 + 4 + 2

    await rebuild(container.engine, container.store.read_all_fields, lambda done, total: None)

    assert await snapshot(container.engine) == live
