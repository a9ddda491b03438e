"""io.waitForEvent: the SDK creates a task that waits for its callback, then registers an ephemeral event
dispatcher for that task's callback URL. The first event of the environment it matches (until it expires) is
handed to the task, which completes with the event; the run executes again and goes on with it.

Matching happens in the transaction that records the event, so an event is matched against every
dispatcher committed before it, and one dispatcher takes at most one event (a second match of it conflicts).
Handing the event over is an outbox message (DispatchEvent), so a crash in between loses nothing. The time
out is the task's own (its callback's timeout, an outbox row due then: see RunWriter)."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from app.adapters.messages import DispatchEvent
from app.adapters.reads import ReadModels
from app.adapters.store import ConcurrencyConflict, EventStore, OutboxMessage
from app.errors import ClientError, NotFound
from app.service.environments import EnvironmentInfo
from app.service.tasks import Tasks
from app.service.writes import Topics
from domain.dispatchers import EventDispatcher, dispatcher_id
from domain.event_records import EventRecord
from domain.times import iso

_CALLBACK_PATH = re.compile(r"/api/v1/runs/([^/]+)/tasks/([^/]+)/callback/([^/]+)")
MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class DispatcherSpec:
    """What the SDK sends (EphemeralEventDispatcherRequestBody), checked."""

    url: str
    names: list[str]
    source: str
    payload_filter: dict[str, Any] | None
    context_filter: dict[str, Any] | None
    timeout_seconds: int


class Dispatchers:
    def __init__(self, store: EventStore, reads: ReadModels, topics: Topics, tasks: Tasks) -> None:
        self.store = store
        self.reads = reads
        self.topics = topics
        self.tasks = tasks

    async def register(self, env: EnvironmentInfo, spec: DispatcherSpec) -> EventDispatcher:
        """The dispatcher of this callback URL: a new one, or the one registered before (an SDK that
        executes the waiting task again registers it again)."""
        run_id, task_id, secret = _callback_of(spec.url)
        await self.tasks.check_callback(run_id, task_id, secret, env.id)
        id = dispatcher_id(str(env.id), spec.url)
        existing = await self.store.get(id, EventDispatcher)
        if existing is not None:
            return existing
        dispatcher = EventDispatcher(
            id=id,
            environment_id=str(env.id),
            url=spec.url,
            run_id=str(run_id),
            task_id=task_id,
            names=spec.names,
            source=spec.source,
            payload_filter=spec.payload_filter,
            context_filter=spec.context_filter,
            expires_at=datetime.now(UTC) + timedelta(seconds=spec.timeout_seconds),
        )
        try:
            await self.store.commit(dispatcher.collect_events())
        except ConcurrencyConflict:
            found = await self.store.get(id, EventDispatcher)
            if found is None:
                raise
            return found
        return dispatcher

    async def match(self, record: EventRecord) -> tuple[list[EventDispatcher], list[OutboxMessage]]:
        """The waiting dispatchers this event matches, each marked matched (to save with the event), and
        the messages that hand it to their tasks."""
        ids = await self.reads.waiting_dispatchers(UUID(record.environment_id), record.name)
        if not ids:
            return [], []
        now = datetime.now(UTC)
        matched: list[EventDispatcher] = []
        messages: list[OutboxMessage] = []
        for id in ids:
            dispatcher = await self.store.get(id, EventDispatcher)
            if dispatcher is None or not dispatcher.matches(
                record.name, record.source, record.payload, record.context, now
            ):
                continue
            dispatcher.match(record.id, record.event_id)
            matched.append(dispatcher)
            message = DispatchEvent(str(dispatcher.id), str(record.id))
            messages.append(self.topics.message(str(dispatcher.id), message))
        return matched, messages

    async def dispatch(self, id: UUID, record_id: UUID) -> str:
        """Hand a matched event to the task waiting for it (the worker, for a DispatchEvent message)."""
        dispatcher = await self.store.get(id, EventDispatcher)
        record = await self.store.get(record_id, EventRecord)
        if dispatcher is None or record is None:
            return "duplicate"
        output = event_output(record)
        try:
            task = await self.tasks.complete_waiting(UUID(dispatcher.run_id), dispatcher.task_id, output)
        except NotFound:
            return "duplicate"
        return "dispatched" if task.output == output else "duplicate"


def event_output(record: EventRecord) -> dict[str, Any]:
    """The event as io.waitForEvent returns it (what trigger.dev POSTed to the task's callback URL)."""
    return {
        "id": record.event_id,
        "name": record.name,
        "source": record.source,
        "payload": record.payload,
        "context": record.context,
        "timestamp": iso(record.sent_at),
    }


def _callback_of(url: str) -> tuple[UUID, str, str]:
    """The run, task and secret a task's callback URL names; the dispatcher hands events to such a task."""
    try:
        found = _CALLBACK_PATH.fullmatch(urlsplit(url).path) if len(url) <= MAX_URL else None
    except ValueError:
        found = None
    if found is None:
        raise ClientError("`url` must be the callback URL of a task of a run (task.callbackUrl)")
    try:
        run_id = UUID(found.group(1))
    except ValueError:
        raise ClientError("`url` names no run") from None
    return run_id, found.group(2), found.group(3)
