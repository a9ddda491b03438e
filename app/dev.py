"""`jobs-service dev`: the whole stack on one machine, starting embedded services for what is not configured."""

import asyncio
import contextlib
import secrets
from dataclasses import replace
from pathlib import Path

from app.container import Container
from app.db import migrate
from app.embedded import EmbeddedKafka, EmbeddedPostgres
from app.environments import ensure_environment
from app.roles import ROLES, run_roles
from app.settings import Settings
from domain.environments import KEY_PREFIX, EnvironmentType

DEV_ENVIRONMENT = "dev"
LOOPBACK = "127.0.0.0/8,::1/128"


def dev_api_key(settings: Settings, data_dir: Path) -> str:
    if settings.dev_api_key:
        return settings.dev_api_key
    key_file = data_dir / "dev-api-key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = KEY_PREFIX[EnvironmentType.DEVELOPMENT] + secrets.token_hex(12)
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


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
        settings = settings.with_services(database_url, bootstrap)
        if settings.allowed_private_networks is None:
            settings = replace(settings, allowed_private_networks=LOOPBACK)  # endpoints on this machine
        await migrate(database_url)
        api_key = dev_api_key(settings, data_dir)
        container = Container.create(settings)
        try:
            await ensure_environment(container.store, DEV_ENVIRONMENT, EnvironmentType.DEVELOPMENT, api_key)
        finally:
            await container.close()

        def ready() -> None:
            print(f"Jobs service ready at http://{settings.host}:{settings.port}", flush=True)
            print(f"  API key (environment {DEV_ENVIRONMENT!r}): {api_key}", flush=True)
            print(f"  database: {_redact(database_url)}  broker: {bootstrap}  data: {data_dir}", flush=True)
            print("  Ctrl-C stops everything.", flush=True)

        await run_roles(settings, ROLES, stop, ready)


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
