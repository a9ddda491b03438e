"""A rebuild's database backends yield the CPU as the rebuild does, when the database runs on this host."""

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from projections.niceness import nice_backends, renice


async def test_backends_of_a_niced_engine_run_nicer_and_others_do_not(database_url: str) -> None:
    niced = create_async_engine(database_url, pool_size=1)
    plain = create_async_engine(database_url, pool_size=1)
    nice_backends(niced, 5)
    if not nice_backends_apply(database_url):
        pytest.skip("the database does not run on this host")
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


def nice_backends_apply(url: str) -> bool:
    host = create_async_engine(url).url.host
    return host in ("localhost", "127.0.0.1", "::1") and any(
        p.info["name"].startswith("postgres") for p in psutil.process_iter(["name"])
    )
