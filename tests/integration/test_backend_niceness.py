"""A rebuild's database backends yield the CPU as the rebuild does, when the database runs on this host."""

from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.tools.embedded import EmbeddedPostgres
from projections.niceness import nice_backends, renice


@pytest.fixture
async def local_postgres_url(postgres_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A PostgreSQL server whose backends are processes of this host: the suite's when it is one (embedded, or a
    local server), else an embedded one started for this test (a container's backends are out of reach)."""
    if await _backends_are_local(postgres_url):
        yield postgres_url
        return
    with EmbeddedPostgres(tmp_path / "postgres") as postgres:
        yield postgres.url


async def test_backends_of_a_niced_engine_run_nicer_and_others_do_not(local_postgres_url: str) -> None:
    niced = create_async_engine(local_postgres_url, pool_size=1)
    plain = create_async_engine(local_postgres_url, pool_size=1)
    nice_backends(niced, 5)
    try:
        async with niced.connect() as conn, plain.connect() as other:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            other_pid = (await other.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            base = psutil.Process(other_pid).nice()
            assert psutil.Process(pid).nice() == min(19, base + 5)
    finally:
        await niced.dispose()
        await plain.dispose()


def test_only_postgres_backends_are_reniced() -> None:
    mine = psutil.Process()
    before = mine.nice()
    assert not renice(mine.pid, 1)  # this test process is no backend
    assert mine.nice() == before


async def _backends_are_local(url: str) -> bool:
    engine = create_async_engine(url, pool_size=1)
    if engine.url.host not in ("localhost", "127.0.0.1", "::1"):
        await engine.dispose()
        return False
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        return psutil.pid_exists(pid) and psutil.Process(pid).name().startswith("postgres")
    finally:
        await engine.dispose()
