"""The key-value store's table: one row per (environment, key), written in a transaction of its own."""

from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_GET = text("SELECT value FROM kv_items WHERE environment_id = :env AND key = :key")
_HAS = text("SELECT EXISTS (SELECT 1 FROM kv_items WHERE environment_id = :env AND key = :key)")
_SET = text(
    "INSERT INTO kv_items (environment_id, key, value) VALUES (:env, :key, :value) "
    "ON CONFLICT (environment_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
)
_DELETE = text("DELETE FROM kv_items WHERE environment_id = :env AND key = :key")


class KeyValueItems:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, environment_id: UUID, key: str) -> str | None:
        async with self.engine.connect() as conn:
            value = (await conn.execute(_GET, {"env": environment_id, "key": key})).scalar()
        return None if value is None else str(value)

    async def has(self, environment_id: UUID, key: str) -> bool:
        async with self.engine.connect() as conn:
            return bool((await conn.execute(_HAS, {"env": environment_id, "key": key})).scalar())

    async def set(self, environment_id: UUID, key: str, value: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(_SET, {"env": environment_id, "key": key, "value": value})

    async def delete(self, environment_id: UUID, key: str) -> bool:
        async with self.engine.begin() as conn:
            return (await conn.execute(_DELETE, {"env": environment_id, "key": key})).rowcount > 0
