import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.container import Container
from app.endpoint_client import EndpointClient
from app.environments import EnvironmentInfo
from app.messages import ExecuteJobRun, decode_message
from domain.endpoints import Endpoint
from tests.node_endpoint import NodeEndpoint


async def count(engine: AsyncEngine, table: str, where: str = "true", **params: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)).scalar_one())


async def register(container: Container, env: EnvironmentInfo, endpoint: NodeEndpoint) -> Endpoint:
    from app.commands import register_endpoint

    client = EndpointClient(10)
    try:
        return await register_endpoint(container.store, client, env, endpoint.endpoint_id, endpoint.url)
    finally:
        await client.close()


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
