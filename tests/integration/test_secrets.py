"""API keys sealed at rest under JOBS_SECRET_KEY: no table holds a raw key, keys rotate, legacy plain-text
rows are sealed on upgrade, and a missing or wrong key stops a process with one clear line."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

import httpx
import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.adapters.db import alembic_config, migrate
from app.adapters.reads import ReadModels
from app.adapters.sealing import Sealer, SecretKeyError, generate_key
from app.container import Container
from app.http_app import create_app
from app.roles import run_roles
from app.service.environments import Authenticator, EnvironmentInfo, hash_key
from app.settings import Settings
from domain.environments import EnvironmentType
from tests.helpers import register
from tests.node_endpoint import NodeEndpoint

CANNOT_OPEN = (
    "jobs-service: JOBS_SECRET_KEY cannot open the stored API key of environment {}: it was sealed with a key "
    "not in the list (while rotating, keep the old key after the new one: JOBS_SECRET_KEY=new,old)"
)
MISSING = (
    "jobs-service: JOBS_SECRET_KEY is not set: make one with `jobs-service secrets generate-key` "
    "and give it to every process"
)


def jobs_service(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "JOBS_SECRET_KEY"} | {"JOBS_OPS_PORT": "0"} | env
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def dump(engine: AsyncEngine) -> str:
    """Every row of every table, as a database dump would show it (bytea in hex)."""
    async with engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            )
        ).scalars()
        rows: list[str] = []
        for table in list(tables):
            rows += (await conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))).scalars()
    return "\n".join(rows)


def assert_nowhere(key: str, dumped: str) -> None:
    assert key not in dumped
    assert key.encode().hex() not in dumped  # nor inside a bytea column (the events' state)


async def add_legacy_environment(engine: AsyncEngine, slug: str, api_key: str, column: str) -> UUID:
    """An environment as the service stored it before keys were sealed."""
    environment_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO environments VALUES (:id, :slug, 'PRODUCTION', :hash, :now, :now)"),
            {"id": environment_id, "slug": slug, "hash": hash_key(api_key), "now": now},
        )
        await conn.execute(
            text(f"INSERT INTO environment_secrets (environment_id, {column}) VALUES (:id, :key)"),
            {"id": environment_id, "key": api_key},
        )
    return environment_id


async def stored_secret(engine: AsyncEngine, environment_id: UUID) -> str:
    async with engine.connect() as conn:
        sealed: str = (
            await conn.execute(
                text("SELECT sealed_api_key FROM environment_secrets WHERE environment_id = :id"),
                {"id": environment_id},
            )
        ).scalar_one()
    return sealed


async def test_no_row_of_any_table_holds_a_raw_key(container: Container) -> None:
    environments = container.service.environments
    _, first = await environments.create("a", EnvironmentType.PRODUCTION)
    b_id, replaced = await environments.create("b", EnvironmentType.DEVELOPMENT)
    current = await environments.rotate_key("b")
    await environments.ensure("c", EnvironmentType.DEVELOPMENT, "tr_dev_chosen_by_the_operator_1")
    c_id = await environments.ensure("c", EnvironmentType.DEVELOPMENT, "tr_dev_chosen_by_the_operator_2")
    assert await environments.reseal_all() == 3

    dumped = await dump(container.engine)
    assert "jobs.Environment.ApiKeyRotated" in dumped  # the dump covers the event store
    for key in (first, replaced, current, "tr_dev_chosen_by_the_operator_1", "tr_dev_chosen_by_the_operator_2"):
        assert_nowhere(key, dumped)
    # Sealed, not lost: each environment's current key opens.
    assert await container.service.authenticator.api_key(b_id) == current
    assert await container.service.authenticator.api_key(c_id) == "tr_dev_chosen_by_the_operator_2"


async def test_a_key_list_opens_what_older_keys_sealed_and_secrets_rotate_reseals(
    container: Container, settings: Settings, secret_key: str
) -> None:
    environment_id, key = await container.service.environments.create("ops", EnvironmentType.PRODUCTION)
    legacy_id = await add_legacy_environment(
        container.engine, "legacy", "tr_prod_legacy_plain_text_key", "sealed_api_key"
    )
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE environment_secrets SET sealed_api_key = 'plaintext:' || sealed_api_key "
                "WHERE environment_id = :i"
            ),
            {"i": legacy_id},
        )
    new = generate_key()
    both = Sealer(f"{new},{secret_key}")
    assert await Authenticator(container.reads, both).api_key(environment_id) == key

    rotated = jobs_service(
        "secrets", "rotate", DATABASE_URL=settings.required_database_url, JOBS_SECRET_KEY=f"{new},{secret_key}"
    )
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "re-sealed 2 secrets with the first key of JOBS_SECRET_KEY"

    only_new = Authenticator(container.reads, Sealer(new))
    assert await only_new.api_key(environment_id) == key
    assert await only_new.api_key(legacy_id) == "tr_prod_legacy_plain_text_key"
    with pytest.raises(SecretKeyError, match="cannot be opened with any key of JOBS_SECRET_KEY"):
        await Authenticator(container.reads, Sealer(secret_key)).api_key(environment_id)
    dumped = await dump(container.engine)
    assert_nowhere(key, dumped)
    assert_nowhere("tr_prod_legacy_plain_text_key", dumped)


@pytest.mark.parametrize("role", ["api", "relay", "worker", "all"])
def test_a_role_refuses_to_start_without_a_key(role: str, settings: Settings) -> None:
    refused = jobs_service(role, DATABASE_URL=settings.required_database_url)
    assert (refused.returncode, refused.stderr.strip().splitlines()) == (1, [MISSING])


async def test_a_wrong_or_malformed_key_stops_a_process_with_one_clear_line(
    container: Container, settings: Settings, kafka_bootstrap: str
) -> None:
    environment_id, _ = await container.service.environments.create("ops", EnvironmentType.PRODUCTION)
    before = await stored_secret(container.engine, environment_id)
    services = {"DATABASE_URL": settings.required_database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    wrong = generate_key()
    for args in (["worker"], ["secrets", "rotate"]):
        refused = jobs_service(*args, **services, JOBS_SECRET_KEY=wrong)
        assert (refused.returncode, refused.stderr.strip().splitlines()) == (1, [CANNOT_OPEN.format("ops")]), args
    malformed = jobs_service("api", **services, JOBS_SECRET_KEY=f"{wrong},not-a-key")
    assert (malformed.returncode, malformed.stderr.strip().splitlines()) == (  # refused with the other settings
        2,
        [
            "jobs-service: JOBS_SECRET_KEY must be Fernet keys (32 url-safe base64-encoded bytes each), "
            "comma-separated; key #2 is not one (make one with `jobs-service secrets generate-key`)"
        ],
    )
    assert await stored_secret(container.engine, environment_id) == before


async def test_the_api_answers_503_when_it_cannot_open_a_secret(
    container: Container, settings: Settings, environment: EnvironmentInfo, compat_endpoint: NodeEndpoint
) -> None:
    await register(container, environment, compat_endpoint)
    run = await container.service.runs.test(environment, "return-value", {}, None)
    wrong = Container.create(replace(settings, secret_key=generate_key()))
    try:
        transport = httpx.ASGITransport(app=create_app(wrong))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post(
                f"/api/v1/runs/{run.run_id}/tasks",
                json={"idempotencyKey": "k", "name": "wait", "delayUntil": None, "callback": {"enabled": True}},
                headers={"Authorization": f"Bearer {environment.api_key}"},
            )
    finally:
        await wrong.close()
    assert response.status_code == 503, response.text
    assert "JOBS_SECRET_KEY" in response.json()["message"]


def test_generate_key_prints_a_new_fernet_key() -> None:
    keys = [jobs_service("secrets", "generate-key").stdout.strip() for _ in range(2)]
    assert keys[0] != keys[1]
    for key in keys:
        Fernet(key)  # raises unless it is 32 url-safe base64-encoded bytes


@pytest.fixture
async def database_at_0004(postgres_url: str) -> AsyncIterator[str]:
    """A database as the previous release left it: migrated up to 0004."""
    name = f"jobs_legacy_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0004")
    yield url
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


async def test_keys_stored_in_plain_text_before_the_upgrade_are_sealed_when_a_role_starts(
    database_at_0004: str, settings: Settings, secret_key: str
) -> None:
    legacy = "tr_prod_" + "ab" * 12
    engine = create_async_engine(database_at_0004)
    try:
        environment_id = await add_legacy_environment(engine, "old", legacy, "api_key")
        await migrate(database_at_0004)
        assert await stored_secret(engine, environment_id) == "plaintext:" + legacy

        # Nothing sealed yet: a downgrade gives the plain text back, and the upgrade marks it again.
        await asyncio.to_thread(command.downgrade, alembic_config(database_at_0004), "0004")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT api_key FROM environment_secrets"))).scalar_one() == legacy
        await migrate(database_at_0004)

        stop = asyncio.Event()
        await run_roles(replace(settings, database_url=database_at_0004), ("api",), stop, stop.set)

        assert_nowhere(legacy, await dump(engine))
        assert Sealer(secret_key).open(await stored_secret(engine, environment_id)) == legacy
        found = await Authenticator(ReadModels(engine), Sealer(secret_key)).authenticate(legacy)
        assert found is not None and found.slug == "old"
        with pytest.raises(Exception, match="holds sealed API keys, which SQL cannot open"):
            await asyncio.to_thread(command.downgrade, alembic_config(database_at_0004), "0004")
        assert await stored_secret(engine, environment_id) != "plaintext:" + legacy
    finally:
        await engine.dispose()
