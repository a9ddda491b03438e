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
from app.service.dispatchers import Dispatchers
from app.service.environments import EnvironmentInfo
from app.service.runs import Runs, new_record, new_run, new_run_id
from app.service.writes import Topics
from domain import ids
from domain.event_records import EventRecord
from domain.runs import JobRun

CONFLICT_RETRIES = 8


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
    def __init__(
        self,
        store: EventStore,
        reads: ReadModels,
        topics: Topics,
        catalog: Catalog,
        runs: Runs,
        dispatchers: Dispatchers,
    ) -> None:
        self.dispatchers = dispatchers
        self.store = store
        self.reads = reads
        self.topics = topics
        self.catalog = catalog
        self.runs = runs

    async def send(self, env: EnvironmentInfo, event: NewEvent) -> EventRecord:
        """Record an event and create a run for each job it triggers (or schedule that for `deliver_at`);
        it completes the tasks of io.waitForEvent that wait for it. The same event id in one environment is
        recorded once; sending it again returns the first record."""
        now = datetime.now(UTC)
        event_id = event.id or str(uuid4())
        for _ in range(CONFLICT_RETRIES):
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
                    await self._save(record)
            except ConcurrencyConflict:
                existing = await self.store.get(record.id, EventRecord)
                if existing is not None:
                    return existing
                continue  # a dispatcher it matched took another event meanwhile: match again
            return record
        raise ConcurrencyConflict(f"event {event_id!r}: the dispatchers it matches kept changing")

    async def deliver(self, record_id: UUID) -> str:
        """Create the runs of a scheduled event that is now due (unless it was canceled)."""
        for _ in range(CONFLICT_RETRIES):
            record = await self.store.get(record_id, EventRecord)
            if record is None or not record.pending:
                return "duplicate"
            record.deliver(datetime.now(UTC))
            try:
                await self._save(record)
            except ConcurrencyConflict:
                continue  # delivered by another worker meanwhile (then a duplicate), or a dispatcher changed
            return "delivered"
        raise ConcurrencyConflict(f"event record {record_id}: kept changing under its delivery")

    async def _save(self, record: EventRecord) -> None:
        """The event with the runs it triggers and the dispatchers it matches, in one transaction."""
        runs = await self._triggered_runs(record)
        matched, handovers = await self.dispatchers.match(record)
        await self.runs.save_new(record, runs, matched, handovers)

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
        return [new_run(new_run_id(), version, record) for version in matching]
