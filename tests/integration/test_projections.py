from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.container import Container
from app.service.environments import EnvironmentInfo
from app.worker.executor import RunExecutor
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
    replayed = await rebuild(container.engine, container.store.read_all, lambda done, total: seen.append((done, total)))

    assert await snapshot(container.engine) == live
    assert replayed == len(await container.store.read_all(limit=10_000))
    assert seen and seen[-1] == (replayed, replayed)
