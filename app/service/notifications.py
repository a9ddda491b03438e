"""Telling a finished run's subscribers how it ended: what a try needs, and recording each try (with the next
one, after a backoff, when it failed)."""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from app.adapters.messages import NotifyRun
from app.adapters.reads import ReadModels
from app.adapters.sealing import Sealer
from app.adapters.store import ConcurrencyConflict, EventStore
from app.service.writes import Topics
from domain import policies
from domain.event_records import EventRecord
from domain.runs import JobRun

MAX_NOTIFICATION_ATTEMPTS = 13


@dataclass(frozen=True, slots=True)
class Notification:
    """A try at notifying `target` of how `run` ended, with what it is made of."""

    run: JobRun
    record: EventRecord
    environment_slug: str
    environment_type: str
    api_key: str
    endpoint_url: str
    completed_at: datetime


class Notifications:
    def __init__(self, store: EventStore, reads: ReadModels, topics: Topics, sealer: Sealer) -> None:
        self.store = store
        self.reads = reads
        self.topics = topics
        self.sealer = sealer

    async def prepare(self, message: NotifyRun) -> Notification | str:
        """What the try this message asks for needs; or why there is none ("duplicate", "missing")."""
        run = await self.store.get(UUID(message.run_id), JobRun)
        if run is None or not run.accepts_notification(message.target, message.attempt):
            return "duplicate"
        record = await self.store.get(UUID(run.event_record_id), EventRecord)
        context = await self.reads.notification_context(UUID(run.environment_id), UUID(run.endpoint_id), run.id)
        if record is None or context is None:
            return "missing"
        completed_at = context.completed_at or run.modified_on
        api_key = self.sealer.open(context.sealed_api_key)
        return Notification(run, record, context.slug, context.type, api_key, context.url, completed_at)

    async def attempted(self, message: NotifyRun, run: JobRun, delivered: bool, detail: str) -> bool:
        """Record the try; a failed one is tried again later, up to a limit. False when another writer
        recorded it first."""
        run.notification_attempted(message.target, message.attempt, delivered, detail)
        retry = not delivered and message.attempt < MAX_NOTIFICATION_ATTEMPTS
        try:
            async with self.store.transaction() as uow:
                await uow.save(run)
                if retry:
                    due = policies.retry_at(datetime.now(UTC), message.attempt)
                    follow_up = NotifyRun(message.run_id, message.target, message.attempt + 1)
                    await uow.enqueue(self.topics.message(message.run_id, follow_up, due))
        except ConcurrencyConflict:
            return False
        return True
