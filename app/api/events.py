"""Events: send (one or many, now or later), cancel a scheduled one, and read one with its runs."""

from typing import Any

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import text

from app import commands
from app.api.common import AnyRequest, container_of, parse_instant
from app.environments import EnvironmentInfo
from app.errors import ClientError, NotFound
from domain import ids
from domain.event_records import EventRecord
from domain.tasks import iso_or_none as iso

MAX_BULK = 100

_RUNS_OF_EVENT = text(
    "SELECT id, status, started_at, completed_at FROM run_status "
    "WHERE environment_id = :env AND event_record_id = :record ORDER BY created_at"
)


class EventBody(msgspec.Struct):
    name: str
    payload: Any = None
    context: Any = None
    id: str | None = None
    timestamp: str | None = None
    source: str | None = None


class EventOptions(msgspec.Struct):
    deliverAt: str | None = None
    deliverAfter: float | None = None
    accountId: str | None = None


class SendEventBody(msgspec.Struct):
    event: EventBody
    options: EventOptions | None = None


class SendEventsBody(msgspec.Struct):
    events: list[EventBody]
    options: EventOptions | None = None


def _new_event(event: EventBody, options: EventOptions | None) -> commands.NewEvent:
    if not event.name or len(event.name) > 200:
        raise ClientError("`event.name` must be 1 to 200 characters")
    if event.id is not None and not 0 < len(event.id) <= 200:
        raise ClientError("`event.id` must be 1 to 200 characters")
    deliver_at = None
    if options is not None and options.deliverAt is not None:
        deliver_at = parse_instant(options.deliverAt, "options.deliverAt")
    elif options is not None and options.deliverAfter is not None:
        if not 0 <= options.deliverAfter <= 365 * 24 * 3600:
            raise ClientError("`options.deliverAfter` must be 0 to 31536000 seconds")
        deliver_at = commands.deliver_after(options.deliverAfter)
    return commands.NewEvent(
        event.name, event.payload, event.context, event.id, event.timestamp, event.source, deliver_at
    )


def event_log(record: EventRecord) -> dict[str, Any]:
    """The ApiEventLog the SDK reads back."""
    delivered_at = record.delivered_at if record.deliver_at else iso(record.created_on)
    return {
        "id": record.event_id,
        "name": record.name,
        "payload": record.payload,
        "context": record.context,
        "timestamp": record.sent_at,
        "deliverAt": record.deliver_at,
        "deliveredAt": delivered_at,
        "cancelledAt": record.cancelled_at,
    }


@post("/api/v1/events", status_code=200)
async def send_event(
    request: AnyRequest, env: NamedDependency[EnvironmentInfo], data: JSONBody[SendEventBody]
) -> dict[str, Any]:
    container = container_of(request)
    record = await commands.send_event(
        container.store, container.settings.execution_topic, env, _new_event(data.event, data.options)
    )
    return event_log(record)


@post("/api/v1/events/bulk", status_code=200)
async def send_events(
    request: AnyRequest, env: NamedDependency[EnvironmentInfo], data: JSONBody[SendEventsBody]
) -> list[dict[str, Any]]:
    if not 0 < len(data.events) <= MAX_BULK:
        raise ClientError(f"`events` must hold 1 to {MAX_BULK} events")
    new_events = [_new_event(event, data.options) for event in data.events]
    container = container_of(request)
    topic = container.settings.execution_topic
    return [event_log(await commands.send_event(container.store, topic, env, event)) for event in new_events]


@post("/api/v1/events/{event_id:str}/cancel", status_code=200)
async def cancel_event(
    request: AnyRequest, event_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    return event_log(await commands.cancel_event(container_of(request).store, env, event_id))


@get("/api/v2/events/{event_id:str}")
async def get_event(
    request: AnyRequest, event_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    container = container_of(request)
    record = await container.store.get(ids.event_record_id(str(env.id), event_id), EventRecord)
    if record is None:
        raise NotFound(f"event {event_id!r} not found")
    async with container.engine.connect() as conn:
        rows = (await conn.execute(_RUNS_OF_EVENT, {"env": env.id, "record": record.id})).all()
    return {
        "id": record.event_id,
        "name": record.name,
        "createdAt": iso(record.created_on),
        "updatedAt": iso(record.modified_on),
        "runs": [
            {"id": str(r.id), "status": r.status, "startedAt": iso(r.started_at), "completedAt": iso(r.completed_at)}
            for r in rows
        ],
    }


HANDLERS = [send_event, send_events, cancel_event, get_event]
