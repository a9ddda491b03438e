"""Events: send (one or many, now or later), cancel a scheduled one, and read one with its runs."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody

from app.api.common import Env, Service, parse_instant
from app.errors import ClientError
from app.service.events import NewEvent
from domain.event_records import EventRecord
from domain.times import iso_or_none as iso

MAX_BULK = 100


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


def _new_event(event: EventBody, options: EventOptions | None) -> NewEvent:
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
        deliver_at = datetime.now(UTC) + timedelta(seconds=options.deliverAfter)
    sent_at = parse_instant(event.timestamp, "event.timestamp") if event.timestamp is not None else None
    return NewEvent(event.name, event.payload, event.context, event.id, sent_at, event.source, deliver_at)


def event_log(record: EventRecord) -> dict[str, Any]:
    """The ApiEventLog the SDK reads back."""
    delivered_at = record.delivered_at if record.deliver_at else record.created_on
    return {
        "id": record.event_id,
        "name": record.name,
        "payload": record.payload,
        "context": record.context,
        "timestamp": iso(record.sent_at),
        "deliverAt": iso(record.deliver_at),
        "deliveredAt": iso(delivered_at),
        "cancelledAt": iso(record.cancelled_at),
    }


@post("/api/v1/events", status_code=200)
async def send_event(service: Service, env: Env, data: JSONBody[SendEventBody]) -> dict[str, Any]:
    return event_log(await service.events.send(env, _new_event(data.event, data.options)))


@post("/api/v1/events/bulk", status_code=200)
async def send_events(service: Service, env: Env, data: JSONBody[SendEventsBody]) -> list[dict[str, Any]]:
    if not 0 < len(data.events) <= MAX_BULK:
        raise ClientError(f"`events` must hold 1 to {MAX_BULK} events")
    new_events = [_new_event(event, data.options) for event in data.events]
    return [event_log(await service.events.send(env, event)) for event in new_events]


@post("/api/v1/events/{event_id:str}/cancel", status_code=200)
async def cancel_event(service: Service, env: Env, event_id: FromPath[str]) -> dict[str, Any]:
    return event_log(await service.events.cancel(env, event_id))


@get("/api/v2/events/{event_id:str}")
async def get_event(service: Service, env: Env, event_id: FromPath[str]) -> dict[str, Any]:
    record, runs = await service.events.with_runs(env, event_id)
    return {
        "id": record.event_id,
        "name": record.name,
        "createdAt": iso(record.created_on),
        "updatedAt": iso(record.modified_on),
        "runs": [
            {"id": str(r.id), "status": r.status, "startedAt": iso(r.started_at), "completedAt": iso(r.completed_at)}
            for r in runs
        ],
    }


HANDLERS = [send_event, send_events, cancel_event, get_event]
