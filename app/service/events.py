"""Events: recording one (now or for later), delivering a scheduled one, canceling it, reading it back."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Row

from app.adapters.messages import DeliverEvent
from app.adapters.reads import ReadModels
from app.adapters.store import ConcurrencyConflict, EventStore
from app.errors import NotFound
from app.service.catalog import Catalog
from app.service.environments import EnvironmentInfo
from app.service.runs import Runs, new_record, new_run
from app.service.writes import Topics
from domain import ids
from domain.event_records import EventRecord
from domain.runs import JobRun


@dataclass(frozen=True, slots=True)
class NewEvent:
    name: str
    payload: Any = None
    context: Any = None
    id: str | None = None
    timestamp: datetime | None = None
    source: str | None = None
    deliver_at: datetime | None = None


class Events:
    def __init__(self, store: EventStore, reads: ReadModels, topics: Topics, catalog: Catalog, runs: Runs) -> None:
        self.store = store
        self.reads = reads
        self.topics = topics
        self.catalog = catalog
        self.runs = runs

    async def send(self, env: EnvironmentInfo, event: NewEvent) -> EventRecord:
        """Record an event and create a run for each job it triggers (or schedule that for `deliver_at`).
        The same event id in one environment is recorded once; sending it again returns the first record."""
        now = datetime.now(UTC)
        event_id = event.id or str(uuid4())
        record = new_record(
            env,
            event_id,
            event.name,
            event.payload,
            event.context,
            event.source or "trigger.dev",
            sent_at=event.timestamp or now,
            deliver_at=event.deliver_at,
        )
        try:
            if event.deliver_at is not None and event.deliver_at > now:
                delivery = self.topics.message(str(record.id), DeliverEvent(str(record.id)), event.deliver_at)
                await self.store.commit(record.collect_events(), [delivery])
            else:
                await self.runs.save_new(record, await self._triggered_runs(record))
        except ConcurrencyConflict:
            existing = await self.store.get(record.id, EventRecord)
            if existing is None:
                raise
            return existing
        return record

    async def deliver(self, record_id: UUID) -> str:
        """Create the runs of a scheduled event that is now due (unless it was canceled)."""
        record = await self.store.get(record_id, EventRecord)
        if record is None or not record.pending:
            return "duplicate"
        runs = await self._triggered_runs(record)
        record.deliver(datetime.now(UTC))
        try:
            await self.runs.save_new(record, runs)
        except ConcurrencyConflict:
            return "duplicate"
        return "delivered"

    async def cancel(self, env: EnvironmentInfo, event_id: str) -> EventRecord:
        record = await self.get(env, event_id)
        record.cancel(datetime.now(UTC))
        await self.store.save(record)
        return record

    async def get(self, env: EnvironmentInfo, event_id: str) -> EventRecord:
        record = await self.store.get(ids.event_record_id(str(env.id), event_id), EventRecord)
        if record is None:
            raise NotFound(f"event {event_id!r} not found")
        return record

    async def with_runs(self, env: EnvironmentInfo, event_id: str) -> tuple[EventRecord, list[Row[Any]]]:
        record = await self.get(env, event_id)
        return record, list(await self.reads.runs_of_event(env.id, record.id))

    async def _triggered_runs(self, record: EventRecord) -> list[JobRun]:
        versions = await self.catalog.latest_versions(UUID(record.environment_id))
        matching = [v for v in versions if v.triggered_by(record.name, record.source, record.payload, record.context)]
        return [new_run(uuid4(), version, record) for version in matching]
