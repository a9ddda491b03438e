"""The key-value store of an environment (io.store.* and client.store): get, set, delete, has."""

from uuid import UUID

from app.adapters.key_value import KeyValueItems


class Store:
    def __init__(self, items: KeyValueItems) -> None:
        self.items = items

    async def get(self, env_id: UUID, key: str) -> str | None:
        return await self.items.get(env_id, key)

    async def has(self, env_id: UUID, key: str) -> bool:
        return await self.items.has(env_id, key)

    async def set(self, env_id: UUID, key: str, value: str) -> str:
        await self.items.set(env_id, key, value)
        return value

    async def delete(self, env_id: UUID, key: str) -> bool:
        return await self.items.delete(env_id, key)
