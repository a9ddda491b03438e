"""The event dispatchers still waiting (io.waitForEvent), projected from EventDispatcher events: what an
event recorded in an environment is matched against."""

from collections.abc import Sequence
from typing import Any

from domain.dispatchers import EventDispatcher
from projections import tables
from projections.changes import Change, Handler, Kind, Projector, as_uuid


def _created(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.event_dispatchers,
            {"id": event.originator_id},
            {
                "environment_id": as_uuid(event.environment_id),
                "names": event.names,
                "source": event.source,
                "payload_filter": event.payload_filter,
                "context_filter": event.context_filter,
                "run_id": as_uuid(event.run_id),
                "task_id": event.task_id,
                "expires_at": event.expires_at,
                "updated_at": at,
            },
            Kind.UPSERT,
            fill={"created_at": at},
        ),
    )


def _matched(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (Change(tables.event_dispatchers, {"id": event.originator_id}, {"matched_at": at, "updated_at": at}),)


# What each event class changes; a class matches the first entry it is (or derives from).
HANDLERS: dict[type, Handler] = {
    EventDispatcher.DispatcherCreated: _created,
    EventDispatcher.DispatcherMatched: _matched,
}
changes = Projector(HANDLERS)
EVENTS = changes.events
handler_for = changes.handler_for
