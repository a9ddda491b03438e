"""Environments and their API keys: creating, rotating, and authenticating a request's key."""

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import Conflict, NotFound
from app.store import EventStore, UnitOfWork
from app.ttl_cache import TtlCache
from domain.environments import KEY_PREFIX, Environment, EnvironmentType

_FIND_BY_HASH = text(
    "SELECT e.id, e.slug, e.type, s.api_key FROM environments e "
    "JOIN environment_secrets s ON s.environment_id = e.id WHERE e.api_key_hash = :hash"
)
_FIND_BY_SLUG = text("SELECT id FROM environments WHERE slug = :slug")
_DELETE_SECRET = text("DELETE FROM environment_secrets WHERE environment_id = :id")
_SAVE_SECRET = text(
    "INSERT INTO environment_secrets (environment_id, api_key) VALUES (:id, :key) "
    "ON CONFLICT (environment_id) DO UPDATE SET api_key = EXCLUDED.api_key"
)


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    id: UUID
    slug: str
    type: EnvironmentType
    api_key: str


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key(type: EnvironmentType) -> str:
    return KEY_PREFIX[type] + secrets.token_hex(12)


async def create_environment(
    store: EventStore, slug: str, type: EnvironmentType, api_key: str | None = None
) -> tuple[UUID, str]:
    if await _find_by_slug(store, slug) is not None:
        raise Conflict(f"environment {slug!r} already exists")
    api_key = api_key or new_api_key(type)
    environment = Environment(id=uuid4(), slug=slug, type=type.value, api_key_hash=hash_key(api_key))
    async with store.transaction() as uow:
        await _save_key(uow, environment, api_key)
    return environment.id, api_key


async def ensure_environment(store: EventStore, slug: str, type: EnvironmentType, api_key: str) -> UUID:
    """The environment `slug` with exactly this key: created, or its key rotated to this one."""
    existing = await _find_by_slug(store, slug)
    if existing is None:
        environment_id, _ = await create_environment(store, slug, type, api_key)
        return environment_id
    environment = await store.get(existing, Environment)
    assert environment is not None
    if environment.api_key_hash != hash_key(api_key):
        environment.rotate_key(api_key_hash=hash_key(api_key))
        async with store.transaction() as uow:
            await _save_key(uow, environment, api_key)
    return environment.id


async def rotate_key(store: EventStore, slug: str, api_key: str | None = None) -> str:
    """Give the environment a new key; the old one stops working."""
    environment = await _environment(store, slug)
    api_key = api_key or new_api_key(environment.type)
    environment.rotate_key(api_key_hash=hash_key(api_key))
    async with store.transaction() as uow:
        await _save_key(uow, environment, api_key)
    return api_key


async def revoke_key(store: EventStore, slug: str) -> None:
    """Take the environment's key away; nothing authenticates as it until a key is rotated in."""
    environment = await _environment(store, slug)
    environment.revoke_key()
    async with store.transaction() as uow:
        await uow.save(environment)
        await uow.conn.execute(_DELETE_SECRET, {"id": environment.id})


async def _environment(store: EventStore, slug: str) -> Environment:
    environment_id = await _find_by_slug(store, slug)
    environment = None if environment_id is None else await store.get(environment_id, Environment)
    if environment is None:
        raise NotFound(f"environment {slug!r} not found")
    return environment


async def _find_by_slug(store: EventStore, slug: str) -> UUID | None:
    async with store.engine.connect() as conn:
        found: UUID | None = (await conn.execute(_FIND_BY_SLUG, {"slug": slug})).scalar()
    return found


async def _save_key(uow: UnitOfWork, environment: Environment, api_key: str) -> None:
    await uow.save(environment)
    await uow.conn.execute(_SAVE_SECRET, {"id": environment.id, "key": api_key})


_SECRET = text("SELECT api_key FROM environment_secrets WHERE environment_id = :id")


class Authenticator:
    """Finds the environment of an API key; answers are cached briefly so a hot path skips the database."""

    def __init__(self, engine: AsyncEngine, ttl_seconds: float = 5.0) -> None:
        self.engine = engine
        self._cache: TtlCache[str, EnvironmentInfo | None] = TtlCache(self._find, ttl_seconds)

    async def authenticate(self, api_key: str) -> EnvironmentInfo | None:
        return await self._cache.get(hash_key(api_key))

    async def _find(self, digest: str) -> EnvironmentInfo | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_FIND_BY_HASH, {"hash": digest})).first()
        return None if row is None else EnvironmentInfo(row.id, row.slug, EnvironmentType(row.type), row.api_key)

    async def api_key(self, environment_id: UUID) -> str:
        """The environment's API key: what EXECUTE_JOB calls carry and what signatures are keyed with."""
        async with self.engine.connect() as conn:
            key: str | None = (await conn.execute(_SECRET, {"id": environment_id})).scalar()
        if key is None:
            raise LookupError(f"environment {environment_id} has no API key")
        return key
