"""The hot statements' own connections (app/adapters/direct.py), on the real database."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.db import direct
from app.adapters.direct import DatabaseUnreachable, positional
from app.faults import is_unavailable

_BACKEND = text("SELECT pg_backend_pid()")
_ECHO = text("SELECT CAST(:b AS text) || '-' || CAST(:a AS text) || '-' || CAST(:b AS text)")


def test_named_parameters_become_positional_in_the_order_written() -> None:
    assert positional(_ECHO) == (
        "SELECT CAST($1 AS text) || '-' || CAST($2 AS text) || '-' || CAST($1 AS text)",
        ("b", "a"),
    )


async def test_a_connection_is_kept_between_statements_and_a_statement_error_does_not_drop_it(
    engine: AsyncEngine,
) -> None:
    connections = direct(engine)
    assert await connections.fetchval(_ECHO, {"a": "x", "b": "y"}) == "y-x-y"
    backend = await connections.fetchval(_BACKEND, {})
    with pytest.raises(asyncpg.DivisionByZeroError):
        await connections.fetchval(text("SELECT 1 / CAST(:zero AS int)"), {"zero": 0})
    assert await connections.fetchval(_BACKEND, {}) == backend


async def test_a_lost_connection_is_unavailable_and_the_next_statement_opens_another(engine: AsyncEngine) -> None:
    connections = direct(engine)
    async with connections.connection() as first, connections.connection() as second:
        lost = await first.fetchval(str(_BACKEND))
        other = await second.fetchval(str(_BACKEND))
    async with engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})
    await asyncio.sleep(0.2)
    with pytest.raises(DatabaseUnreachable) as raised:  # idle connections are taken last in, first out
        await connections.fetchval(_BACKEND, {})
    assert is_unavailable(raised.value)
    now = await connections.fetchval(_BACKEND, {})
    assert now not in (lost, other)  # a fresh connection: the idle one left behind was closed with the lost one


async def test_a_statement_interrupted_midway_closes_its_connection(engine: AsyncEngine) -> None:
    connections = direct(engine)
    backend = await connections.fetchval(_BACKEND, {})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await connections.execute(text("SELECT pg_sleep(CAST(:s AS float))"), {"s": 5})
    assert await connections.fetchval(_BACKEND, {}) != backend
