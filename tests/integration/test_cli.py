"""The operator commands, run as a user runs them."""

import importlib.metadata
import os
import re
import subprocess
import sys

from app.container import Container
from app.service.environments import Authenticator, EnvironmentInfo
from tests.helpers import count, register
from tests.node_endpoint import NodeEndpoint


def jobs_service(database_url: str, secret_key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "JOBS_SECRET_KEY": secret_key}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_migrate_and_env_create(container: Container, database_url: str, secret_key: str) -> None:
    migrated = jobs_service(database_url, secret_key, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    created = jobs_service(database_url, secret_key, "env", "create", "prod", "--type", "PRODUCTION")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split("API key: ")[1].strip()
    assert key.startswith("tr_prod_")
    info = await container.service.authenticator.authenticate(key)
    assert info is not None and (info.slug, info.type) == ("prod", "PRODUCTION")
    duplicate = jobs_service(database_url, secret_key, "env", "create", "prod")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "jobs-service: environment 'prod' already exists"
    assert await count(container.engine, "environments") == 1


async def test_projections_rebuild_shows_progress(
    container: Container,
    database_url: str,
    secret_key: str,
    environment: EnvironmentInfo,
    compat_endpoint: NodeEndpoint,
) -> None:
    await register(container, environment, compat_endpoint)
    for _ in range(3):
        await container.service.runs.test(environment, "return-value", {}, None)
    rebuilt = jobs_service(database_url, secret_key, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "100%" in rebuilt.stderr
    # The environment, the endpoint registered and indexed, the queues its jobs declare (pair, sched-pool),
    # and an event and a run per test.
    assert "read models rebuilt from 11 events" in rebuilt.stdout
    assert await count(container.engine, "run_status", "status = 'QUEUED'") == 3


async def test_rotate_and_revoke_a_key(container: Container, database_url: str, secret_key: str) -> None:
    created = jobs_service(database_url, secret_key, "env", "create", "ops", "--type", "PRODUCTION")
    old_key = created.stdout.split("API key: ")[1].strip()
    rotated = jobs_service(database_url, secret_key, "env", "rotate-key", "ops")
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.split("API key: ")[1].strip()
    assert new_key.startswith("tr_prod_") and new_key != old_key
    fresh = Authenticator(container.reads, container.sealer)
    assert await fresh.authenticate(old_key) is None
    assert (await fresh.authenticate(new_key)) is not None
    revoked = jobs_service(database_url, secret_key, "env", "revoke-key", "ops")
    assert revoked.returncode == 0, revoked.stderr
    assert await Authenticator(container.reads, container.sealer).authenticate(new_key) is None
    missing = jobs_service(database_url, secret_key, "env", "rotate-key", "nope")
    assert (missing.returncode, missing.stderr.strip()) == (1, "jobs-service: environment 'nope' not found")


def jobs_service_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command with these variables added to this process's environment, reaching no service."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_variable_stops_a_command_with_one_line() -> None:
    for command in (("migrate",), ("api",), ("dev",)):
        result = jobs_service_with({"JOBS_WORKER_CONCURRENCY": "many"}, *command)
        assert (result.returncode, result.stdout) == (2, ""), command
        assert result.stderr == (
            "jobs-service: JOBS_WORKER_CONCURRENCY must be an integer of at least 1, got 'many'\n"
        ), command


def test_version() -> None:
    result = jobs_service_with({}, "--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"jobs-service {importlib.metadata.version('jobs-service')}\n"
    assert re.fullmatch(r"jobs-service \d+\.\d+\.\d+\S*\n", result.stdout)


def test_dev_refuses_a_port_out_of_range_before_starting_anything() -> None:
    for port in ("0", "70000", "-1", "http"):
        result = jobs_service_with({}, "dev", "--port", port)
        assert result.returncode == 2, port
        assert f"argument --port: must be an integer from 1 to 65535, got '{port}'" in result.stderr
