"""`jobs-service dev`: the whole stack on one machine, starting embedded services for what is not configured."""

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.adapters.db import migrate
from app.adapters.sealing import generate_key
from app.adapters.topic_ring import EMBEDDED_BROKER_MAX_IN_FLIGHT, EMBEDDED_BROKER_PERIOD_SECONDS
from app.container import Container
from app.observability.ops_server import OpsServer
from app.roles import ROLES, run_roles
from app.settings import Settings
from app.tools.embedded import EmbeddedKafka, EmbeddedPostgres
from domain.environments import KEY_PREFIX, EnvironmentType

DEV_ENVIRONMENT = "dev"
LOOPBACK = "127.0.0.0/8,::1/128"


def dev_api_key(settings: Settings, data_dir: Path) -> str:
    if settings.dev_api_key:
        return settings.dev_api_key
    return _kept(data_dir / "dev-api-key", lambda: KEY_PREFIX[EnvironmentType.DEVELOPMENT] + secrets.token_hex(12))


def dev_secret_key(settings: Settings, data_dir: Path) -> str:
    """JOBS_SECRET_KEY, or the key this data folder's database was sealed with (made on first start)."""
    if settings.secret_key:
        return settings.secret_key
    return _kept(data_dir / "secret-key", generate_key)


def _kept(path: Path, make: Callable[[], str]) -> str:
    """The value kept in `path`, or a new one written there readable by its owner alone."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(value + "\n")
    return value


def prepare_data_dir(settings: Settings) -> Path:
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


async def run_dev(settings: Settings, stop: asyncio.Event) -> None:
    data_dir = prepare_data_dir(settings)
    with contextlib.ExitStack() as services:
        database_url = settings.database_url
        if not database_url:
            postgres = services.enter_context(EmbeddedPostgres(data_dir / "postgres"))
            database_url = postgres.url
        bootstrap = settings.kafka_bootstrap_servers
        if not bootstrap:
            bootstrap = services.enter_context(EmbeddedKafka(log_path=data_dir / "broker.log")).bootstrap_servers
            # It keeps everything in memory: a ring empties what was handled, and a backlog waits in the outbox.
            ring_seconds = settings.topic_ring_seconds or EMBEDDED_BROKER_PERIOD_SECONDS
            in_flight = settings.relay_max_in_flight or EMBEDDED_BROKER_MAX_IN_FLIGHT
            settings = replace(settings, topic_ring_seconds=ring_seconds, relay_max_in_flight=in_flight)
        settings = settings.with_services(database_url, bootstrap)
        if settings.allowed_private_networks is None:
            settings = replace(settings, allowed_private_networks=LOOPBACK)  # endpoints on this machine
        settings = replace(settings, secret_key=dev_secret_key(settings, data_dir))
        await migrate(database_url)
        api_key = dev_api_key(settings, data_dir)
        container = Container.create(settings)
        try:
            await container.service.environments.prepare_secrets()  # legacy keys sealed before one more is saved
            await container.service.environments.ensure(DEV_ENVIRONMENT, EnvironmentType.DEVELOPMENT, api_key)
        finally:
            await container.close()

        ops = OpsServer(settings.host, 0 if settings.ops_port is None else settings.ops_port)

        def ready() -> None:
            print(f"Jobs service ready at http://{settings.host}:{settings.port}", flush=True)
            print(f"  API key (environment {DEV_ENVIRONMENT!r}): {api_key}", flush=True)
            print(f"  database: {_redact(database_url)}  broker: {bootstrap}  data: {data_dir}", flush=True)
            for role in ROLES:  # one process: they share its operations server
                print(f"  metrics {role}: {ops.url}/metrics", flush=True)
            print("  Ctrl-C stops everything.", flush=True)

        await run_roles(settings, ROLES, stop, ready, ops)


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
