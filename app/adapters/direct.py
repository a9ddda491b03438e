"""The hot statements straight on the driver: asyncpg connections this process holds beside SQLAlchemy's pool.

Through SQLAlchemy a statement costs the client about 0.48 ms of CPU here (checkout, execution context, result
wrapping, the greenlet hops), against 0.07 ms on a held asyncpg connection. The statements every run makes
(a write's one statement, loading aggregates, the relay's claim and mark, the acknowledgement) take this path;
the rest keep SQLAlchemy. Statements stay written once, as `text()`, and are compiled to `$n` placeholders.

A connection that fails, or whose statement is interrupted, is closed, not reused; when one is lost, the idle
ones are closed too (as SQLAlchemy empties its pool on a disconnect). Failing to reach the database raises
DatabaseUnreachable, an OSError, as a connection that cannot be made does through SQLAlchemy.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL

from app.adapters.json_limits import decode_stored

_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]
# Errors after which the connection cannot be used: the server is gone, restarting, or refuses more sessions.
_CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


class DatabaseUnreachable(ConnectionError):
    """The database could not be reached, or the connection to it broke."""


@functools.lru_cache(maxsize=512)
def positional(statement: TextClause) -> tuple[str, tuple[str, ...]]:
    """The statement with `$n` placeholders, and the parameter names in their order."""
    compiled = statement.compile(dialect=_DIALECT)
    return compiled.string, tuple(compiled.positiontup or ())


def arguments(statement: TextClause, params: Mapping[str, Any]) -> list[Any]:
    """The `$n` statement, then its arguments: what a driver call takes."""
    sql, names = positional(statement)
    return [sql, *(params[name] for name in names)]


class Direct:
    """Up to `size` asyncpg connections, opened when first needed and kept open while they work."""

    def __init__(self, url: URL, size: int, connect_timeout: float = 5, command_timeout: float = 60) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._idle: list[asyncpg.Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except asyncpg.PostgresError as error:
                if isinstance(error, _CONNECTION_LOST) or conn.is_closed():
                    conn.terminate()
                    self._drop_idle()
                    raise DatabaseUnreachable(str(error)) from error
                self._release(conn)
                raise
            except BaseException as error:
                lost = isinstance(error, _CONNECTION_LOST) or conn.is_closed()
                conn.terminate()  # interrupted mid-statement (or broken): its state is unknown
                if lost:
                    self._drop_idle()
                    raise DatabaseUnreachable(str(error)) from error
                raise
            self._release(conn)

    async def fetch(self, statement: TextClause, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(*arguments(statement, params))
        return rows

    async def fetchval(self, statement: TextClause, params: Mapping[str, Any]) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(*arguments(statement, params))

    async def execute(self, statement: TextClause, params: Mapping[str, Any]) -> str:
        async with self.connection() as conn:
            status: str = await conn.execute(*arguments(statement, params))
        return status

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close(timeout=2) for conn in idle), return_exceptions=True)

    def _drop_idle(self) -> None:
        """After a lost connection the others most likely broke too (a restart): open new ones when needed."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()

    def _release(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
        else:
            self._idle.append(conn)

    async def _connect(self) -> asyncpg.Connection:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                self.dsn, timeout=self.connect_timeout, command_timeout=self.command_timeout
            )
        except (*_CONNECTION_LOST, asyncpg.InterfaceError) as error:
            raise DatabaseUnreachable(str(error)) from error
        try:
            await _json_codecs(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn


async def _json_codecs(conn: asyncpg.Connection) -> None:
    """JSON columns decoded as SQLAlchemy's connections decode them (the engine's deserializer)."""
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=lambda data: decode_stored(data.decode()), schema="pg_catalog",
        format="binary",
    )  # fmt: skip
    await conn.set_type_codec(
        "jsonb", encoder=lambda text: b"\x01" + text.encode(), decoder=lambda data: decode_stored(data[1:].decode()),
        schema="pg_catalog", format="binary",
    )  # fmt: skip
