"""Environments and their API keys: creating, rotating and revoking them, authenticating a request's key.

The events hold only a key's SHA-256 hash (what authentication looks up). The key itself, which calls to the
environment's endpoints carry and callbacks are signed with, is kept sealed (app/adapters/sealing.py) in
`environment_secrets`; revoking a key deletes it."""

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Row

from app.adapters.reads import ReadModels
from app.adapters.sealing import LEGACY_PREFIX, Sealer, SecretKeyError
from app.adapters.store import EventStore, UnitOfWork
from app.adapters.ttl_cache import TtlCache
from app.errors import Conflict, NotFound
from domain.environments import KEY_PREFIX, Environment, EnvironmentType


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


class Environments:
    """The write side of environments and their keys."""

    def __init__(self, store: EventStore, reads: ReadModels, sealer: Sealer) -> None:
        self.store = store
        self.reads = reads
        self.sealer = sealer

    async def create(self, slug: str, type: EnvironmentType, api_key: str | None = None) -> tuple[UUID, str]:
        if await self._find_by_slug(slug) is not None:
            raise Conflict(f"environment {slug!r} already exists")
        api_key = api_key or new_api_key(type)
        environment = Environment(id=uuid4(), slug=slug, type=type.value, api_key_hash=hash_key(api_key))
        async with self.store.transaction() as uow:
            await self._save_key(uow, environment, api_key)
        return environment.id, api_key

    async def ensure(self, slug: str, type: EnvironmentType, api_key: str) -> UUID:
        """The environment `slug` with exactly this key: created, or its key rotated to this one."""
        existing = await self._find_by_slug(slug)
        if existing is None:
            environment_id, _ = await self.create(slug, type, api_key)
            return environment_id
        environment = await self.store.get(existing, Environment)
        assert environment is not None
        if not hmac.compare_digest(environment.api_key_hash or "", hash_key(api_key)):
            environment.rotate_key(api_key_hash=hash_key(api_key))
            async with self.store.transaction() as uow:
                await self._save_key(uow, environment, api_key)
        return environment.id

    async def rotate_key(self, slug: str, api_key: str | None = None) -> str:
        """Give the environment a new key; the old one stops working."""
        environment = await self._environment(slug)
        api_key = api_key or new_api_key(environment.type)
        environment.rotate_key(api_key_hash=hash_key(api_key))
        async with self.store.transaction() as uow:
            await self._save_key(uow, environment, api_key)
        return api_key

    async def revoke_key(self, slug: str) -> None:
        """Take the environment's key away; nothing authenticates as it until a key is rotated in."""
        environment = await self._environment(slug)
        environment.revoke_key()
        async with self.store.transaction() as uow:
            await uow.save(environment)
            await uow.delete_secret(environment.id)

    async def prepare_secrets(self) -> int:
        """At start-up: seal the keys a migration left in plain text, then make sure every stored key opens
        with JOBS_SECRET_KEY, so a wrong key stops the process at once with one clear message. Returns how
        many keys were sealed."""
        sealed = await self._seal_legacy()
        async with self.store.transaction() as uow:
            _refuse_unopenable(await uow.secrets(), self.sealer.open)
        return sealed

    async def reseal_all(self) -> int:
        """Seal every stored key again with the first key of JOBS_SECRET_KEY; all or none. Returns how many."""
        async with self.store.transaction() as uow:
            resealed = _refuse_unopenable(await uow.secrets(), self.sealer.reseal)
            await uow.update_secrets(resealed)
        return len(resealed)

    async def _seal_legacy(self) -> int:
        async with self.store.transaction() as uow:
            rows = await uow.secrets(starting_with=LEGACY_PREFIX)
            await uow.update_secrets({row.environment_id: self.sealer.reseal(row.sealed_api_key) for row in rows})
        return len(rows)

    async def _environment(self, slug: str) -> Environment:
        environment_id = await self._find_by_slug(slug)
        environment = None if environment_id is None else await self.store.get(environment_id, Environment)
        if environment is None:
            raise NotFound(f"environment {slug!r} not found")
        return environment

    async def _find_by_slug(self, slug: str) -> UUID | None:
        return await self.reads.environment_id(slug)

    async def _save_key(self, uow: UnitOfWork, environment: Environment, api_key: str) -> None:
        await uow.save(environment)
        await uow.save_secret(environment.id, self.sealer.seal(api_key))


def _refuse_unopenable(rows: Sequence[Row[Any]], transform: Callable[[str], str]) -> dict[UUID, str]:
    """`transform` (open or reseal) of each row's sealed key, by environment id; a SecretKeyError naming
    every environment whose key it cannot open."""
    done: dict[UUID, str] = {}
    failed: list[str] = []
    for row in rows:
        try:
            done[row.environment_id] = transform(row.sealed_api_key)
        except SecretKeyError:
            failed.append(row.slug)
    if failed:
        raise SecretKeyError(
            f"JOBS_SECRET_KEY cannot open the stored API key of environment {', '.join(failed)}: it was sealed "
            "with a key not in the list (while rotating, keep the old key after the new one: JOBS_SECRET_KEY=new,old)"
        )
    return done


class Authenticator:
    """Finds the environment of an API key; answers are cached briefly so a hot path skips the database."""

    def __init__(self, reads: ReadModels, sealer: Sealer, ttl_seconds: float = 5.0) -> None:
        self.reads = reads
        self.sealer = sealer
        self._cache: TtlCache[str, tuple[UUID, str, EnvironmentType] | None] = TtlCache(self._find, ttl_seconds)

    async def authenticate(self, api_key: str) -> EnvironmentInfo | None:
        found = await self._cache.get(hash_key(api_key))
        return None if found is None else EnvironmentInfo(*found, api_key)

    async def _find(self, digest: str) -> tuple[UUID, str, EnvironmentType] | None:
        row = await self.reads.environment_by_key_hash(digest)
        return None if row is None else (row.id, row.slug, EnvironmentType(row.type))

    async def api_key(self, environment_id: UUID) -> str:
        """The environment's API key: what EXECUTE_JOB calls carry and what signatures are keyed with."""
        sealed = await self.reads.sealed_key(environment_id)
        if sealed is None:
            raise LookupError(f"environment {environment_id} has no API key")
        return self.sealer.open(sealed)
