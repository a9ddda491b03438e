import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.adapters.db import migrate
from app.adapters.sealing import generate_key
from app.adapters.store import EventStore
from app.container import Container
from app.observability.ops_server import OpsServer
from app.roles import ROLES, run_roles
from app.service.environments import EnvironmentInfo
from app.settings import Settings
from app.tools.embedded import free_port
from domain.environments import EnvironmentType
from tests.node_endpoint import COMPAT_API_KEY, NodeEndpoint, node_endpoint
from tests.services import kafka_server, postgres_server

ALL_TABLES = (
    "events, outbox, environment_secrets, environments, endpoints, jobs, job_versions, run_status, "
    "kv_items, event_dispatchers, schedules, queues"
)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with kafka_server() as servers:
        yield servers


@pytest.fixture(scope="session")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database of its own on the test server, dropped at the end."""
    name = f"jobs_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    await migrate(url)
    yield url
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
def api_port() -> int:
    """The port every test's API listens on, so the Node endpoint knows where to call back."""
    return free_port()


@pytest.fixture(scope="session")
def secret_key() -> str:
    """The JOBS_SECRET_KEY of every test's processes (one per session: secrets sealed in one test open in the next)."""
    return generate_key()


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str, api_port: int, secret_key: str) -> Settings:
    unique = uuid.uuid4().hex[:8]
    return replace(
        Settings(),
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        port=api_port,
        execution_topic=f"job-execution-{unique}",
        consumer_group=f"jobs-worker-{unique}",
        kafka_session_timeout_ms=2000,
        relay_poll_seconds=0.2,
        lease_seconds=30,
        endpoint_timeout_seconds=30,
        db_pool_size=10,
        allowed_private_networks="127.0.0.0/8",
        secret_key=secret_key,
        ops_port=0,  # every process of every test opens its own
    )


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    container = Container.create(settings)
    async with container.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {ALL_TABLES} RESTART IDENTITY"))
    yield container
    await container.close()


@pytest.fixture
def engine(container: Container) -> AsyncEngine:
    return container.engine


@pytest.fixture
def store(container: Container) -> EventStore:
    return container.store


@pytest.fixture(scope="session")
def compat_endpoint(api_port: int) -> Iterator[NodeEndpoint]:
    """The real @trigger.dev/sdk endpoint; its key is the `environment` fixture's key."""
    with node_endpoint(api_url=f"http://127.0.0.1:{api_port}") as endpoint:
        yield endpoint


@pytest.fixture
def ops_server(settings: Settings) -> OpsServer:
    """The operations server of the `stack` fixture's process (its `url` is known once the stack runs)."""
    return OpsServer(settings.host, 0)


@pytest.fixture
async def stack(container: Container, settings: Settings, ops_server: OpsServer) -> AsyncIterator[httpx.AsyncClient]:
    """The API, relay and worker running in this process; yields a client of the API."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_roles(settings, ROLES, stop, ready.set, ops_server))
    async with asyncio.timeout(30):
        await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        await task
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client:
        yield client
    stop.set()
    async with asyncio.timeout(30):
        await task


@pytest.fixture
async def environment(container: Container) -> EnvironmentInfo:
    environment_id, api_key = await container.service.environments.create(
        "test", EnvironmentType.DEVELOPMENT, COMPAT_API_KEY
    )
    return EnvironmentInfo(environment_id, "test", EnvironmentType.DEVELOPMENT, api_key)


@pytest.fixture
async def api(
    stack: httpx.AsyncClient, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the running stack, with the SDK endpoint registered in the test environment."""
    stack.headers["Authorization"] = f"Bearer {environment.api_key}"
    registered = await stack.post(
        "/api/v1/endpoints", json={"id": compat_endpoint.endpoint_id, "url": compat_endpoint.url}
    )
    assert registered.status_code == 200, registered.text
    yield stack
