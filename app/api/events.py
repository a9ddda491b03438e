"""Events: send (one or many, now or later), cancel a scheduled one, and read one with its runs."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody

from app.api.answers import CanceledRuns, EventLog, EventWithRuns
from app.api.common import BEARER, Env, Service, errors, parse_instant
from app.errors import ClientError
from app.service.events import NewEvent

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


@post(
    "/api/v1/events",
    status_code=200,
    tags=["events"],
    summary="Send an event, now or later; it starts the runs of the jobs it triggers",
    security=BEARER,
    responses=errors(401),
)
async def send_event(service: Service, env: Env, data: JSONBody[SendEventBody]) -> EventLog:
    return EventLog.of(await service.events.send(env, _new_event(data.event, data.options)))


@post(
    "/api/v1/events/bulk",
    status_code=200,
    tags=["events"],
    summary="Send up to 100 events",
    security=BEARER,
    responses=errors(401),
)
async def send_events(service: Service, env: Env, data: JSONBody[SendEventsBody]) -> list[EventLog]:
    if not 0 < len(data.events) <= MAX_BULK:
        raise ClientError(f"`events` must hold 1 to {MAX_BULK} events")
    new_events = [_new_event(event, data.options) for event in data.events]
    return [EventLog.of(await service.events.send(env, event)) for event in new_events]


@post(
    "/api/v1/events/{event_id:str}/cancel",
    status_code=200,
    tags=["events"],
    summary="Cancel an event not delivered yet (a delivered one stays as it is)",
    security=BEARER,
    responses=errors(401, 404),
)
async def cancel_event(service: Service, env: Env, event_id: FromPath[str]) -> EventLog:
    return EventLog.of(await service.events.cancel(env, event_id))


@get(
    "/api/v2/events/{event_id:str}",
    tags=["events"],
    summary="An event with the runs it started",
    security=BEARER,
    responses=errors(401, 404),
)
async def get_event(service: Service, env: Env, event_id: FromPath[str]) -> EventWithRuns:
    record, runs = await service.events.with_runs(env, event_id)
    return EventWithRuns.of(record, runs)


@post(
    "/api/v1/events/{event_id:str}/cancel-runs",
    status_code=200,
    tags=["control"],
    summary="Cancel the runs an event started that have not started executing (as trigger.dev v2 did)",
    security=BEARER,
    responses=errors(401, 404),
)
async def cancel_event_runs(service: Service, env: Env, event_id: FromPath[str]) -> CanceledRuns:
    canceled, failed = await service.control.cancel_event_runs(env, await service.events.get(env, event_id))
    return CanceledRuns(canceled, failed)


HANDLERS = [send_event, send_events, cancel_event, get_event, cancel_event_runs]
