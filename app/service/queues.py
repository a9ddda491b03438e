"""Queues: named concurrency groups, created with a limit ahead of any job or declared by jobs' indexes, and
read with how many of their runs execute and wait."""

import re
from typing import Any

from sqlalchemy import Row

from app.adapters.codec import DomainEvent
from app.adapters.reads import ReadModels
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.errors import ClientError, NotFound
from app.service.environments import EnvironmentInfo
from app.service.writes import CONFLICT_RETRIES
from domain import ids
from domain.endpoints import Endpoint
from domain.queues import API, INDEX, MAX_LIMIT, MAX_NAME_LENGTH, Queue

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._:-]*$")


class Queues:
    def __init__(self, store: EventStore, reads: ReadModels) -> None:
        self.store = store
        self.reads = reads

    async def create(self, env: EnvironmentInfo, name: str, limit: int) -> Row[Any]:
        """Create the queue with its limit, or set the limit of the one that exists; returns it with its counts."""
        if not (0 < len(name) <= MAX_NAME_LENGTH and _NAME.match(name)):
            raise ClientError(
                f"`name` must be 1-{MAX_NAME_LENGTH} letters, digits, '.', '_', ':' or '-', starting with a letter "
                "or digit"
            )
        if not 1 <= limit <= MAX_LIMIT:
            raise ClientError(f"`limit` must be from 1 to {MAX_LIMIT}")
        for _ in range(CONFLICT_RETRIES):
            events = await self._declare(str(env.id), name, limit, API)
            try:
                await self.store.commit(events)
            except ConcurrencyConflict:
                continue
            return await self.get(env, name)
        raise ConcurrencyConflict(f"queue {name!r} kept changing under this request")

    async def for_index(self, endpoint: Endpoint) -> tuple[list[DomainEvent], list[OutboxMessage]]:
        """Each named group the index's jobs declare (`concurrencyLimit: {id, limit}`) with that limit."""
        declared: dict[str, int] = {}
        for job in endpoint.jobs:
            limit = job.get("concurrencyLimit")
            if isinstance(limit, dict) and isinstance(limit.get("id"), str) and _is_int(limit.get("limit")):
                declared[limit["id"]] = min(max(1, limit["limit"]), MAX_LIMIT)
        events: list[DomainEvent] = []
        for name, limit in declared.items():
            events += await self._declare(endpoint.environment_id, name, limit, INDEX)
        return events, []

    async def _declare(self, environment_id: str, name: str, limit: int, by: str) -> list[DomainEvent]:
        queue_id = ids.queue_id(environment_id, name)
        queue = await self.store.get(queue_id, Queue)
        if queue is None:
            queue = Queue(id=queue_id, environment_id=environment_id, name=name, limit=limit, declared_by=by)
        else:
            queue.set_limit(limit, by)
        return list(queue.collect_events())

    async def of_environment(self, env: EnvironmentInfo) -> list[Row[Any]]:
        return list(await self.reads.queues(env.id))

    async def get(self, env: EnvironmentInfo, name: str) -> Row[Any]:
        row = await self.reads.queue(env.id, name)
        if row is None:
            raise NotFound(f"queue {name!r} not found")
        return row


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
