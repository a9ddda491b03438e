import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters import kafka
from app.adapters.messages import ExecuteJobRun, decode_message
from app.container import Container
from app.observability.ops_server import OpsServer
from app.roles import run_roles
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from domain.endpoints import Endpoint
from tests.node_endpoint import NodeEndpoint


async def count(engine: AsyncEngine, table: str, where: str = "true", **params: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)).scalar_one())


async def register(container: Container, env: EnvironmentInfo, endpoint: NodeEndpoint) -> Endpoint:
    return await container.service.catalog.register_endpoint(env, endpoint.endpoint_id, endpoint.url)


async def outbox_messages(engine: AsyncEngine) -> list[ExecuteJobRun]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT value FROM outbox ORDER BY id"))).scalars().all()
    return [decode_message(value) for value in rows]


async def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Polls an async predicate until it returns something truthy; fails the test at the timeout."""
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(interval)
    return result


TERMINAL = {"SUCCESS", "FAILURE", "TIMED_OUT", "ABORTED", "CANCELED", "UNRESOLVED_AUTH", "INVALID_PAYLOAD"}


async def finished(api: httpx.AsyncClient, run_id: str, timeout: float = 60) -> dict[str, Any]:
    return await in_status(api, run_id, TERMINAL, timeout)


async def in_status(api: httpx.AsyncClient, run_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        run: dict[str, Any] = (await api.get(f"/api/v2/runs/{run_id}")).json()
        return run if run["status"] in statuses else None

    result: dict[str, Any] = await wait_for(reached, timeout=timeout)
    return result


async def start_test_run(api: httpx.AsyncClient, slug: str, payload: Any = None, **options: Any) -> str:
    response = await api.post(f"/api/v1/jobs/{slug}/test", json={"payload": payload or {}, **options})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["runId"]
    return run_id


Roles = tuple[asyncio.Event, "asyncio.Task[None]"]


async def start_roles(settings: Settings, *roles: str, ops: OpsServer | None = None) -> Roles:
    """The roles running in this process (with `ops` as their operations server), until stop_roles."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_roles(settings, roles, stop, ready.set, ops))
    async with asyncio.timeout(30):
        await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        await task
    return stop, task


async def stop_roles(roles: Roles) -> None:
    roles[0].set()
    await asyncio.wait_for(roles[1], 30)


async def send_unreadable_message(settings: Settings) -> None:
    """A message no worker can decode, on the execution topic: it goes to the dead-letter topic."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.execution_topic, b"\xffnot a message", key=b"poison")
    finally:
        await producer.stop()
