"""The database engine and migrations."""

import asyncio
import weakref
from pathlib import Path

import msgspec
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import migrations
from app.adapters.direct import Direct
from app.adapters.json_limits import decode_stored

_json_encoder = msgspec.json.Encoder()
_CONNECT_TIMEOUT, _COMMAND_TIMEOUT = 5, 60
_direct: "weakref.WeakKeyDictionary[AsyncEngine, Direct]" = weakref.WeakKeyDictionary()


def _dumps(value: object) -> str:
    return _json_encoder.encode(value).decode()


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping per checkout (it doubled the round trips of a request): a connection that a database
        # restart broke fails once, SQLAlchemy then drops the whole pool, and the caller answers 503.
        pool_timeout=5,
        # Fail fast when the database is down: callers answer 503 instead of hanging.
        connect_args={"timeout": _CONNECT_TIMEOUT, "command_timeout": _COMMAND_TIMEOUT},
        hide_parameters=True,  # an error's text (logged) must not quote the values: payloads, sealed keys
        json_serializer=_dumps,
        json_deserializer=decode_stored,
    )


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The engine (same pool) for reads made of single statements: no BEGIN and no ROLLBACK around them, two
    round trips fewer per read. Each statement of a READ COMMITTED transaction takes its own snapshot anyway,
    so a read outside one sees the same; a read that needs one snapshot or a lock takes the engine itself."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def direct(engine: AsyncEngine) -> Direct:
    """The engine's companion for hot statements (app/adapters/direct.py): as many connections again at most."""
    if engine not in _direct:
        size = max(1, engine.pool.size())  # type: ignore[attr-defined]
        _direct[engine] = Direct(engine.url, size, _CONNECT_TIMEOUT, _COMMAND_TIMEOUT)
    return _direct[engine]


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's connections, its companion's included."""
    if (companion := _direct.pop(engine, None)) is not None:
        await companion.close()
    await engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate_sync(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)
