"""A per-process cache whose entries live a few seconds; concurrent misses of one key share a single load,
so an expiring entry on a hot path costs one query, not one per request in flight."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.load = load
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        """The cached value, or a fresh load (whose error, if any, is raised and not cached)."""
        cached = self._values.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key))
            self._loading[key] = loading
        return await asyncio.shield(loading)

    async def _load(self, key: K) -> V:
        try:
            value = await self.load(key)
        finally:
            del self._loading[key]
        if len(self._values) >= self.max_entries:
            self._values.clear()
        self._values[key] = (time.monotonic() + self.ttl_seconds, value)
        return value

    def clear(self) -> None:
        self._values.clear()
