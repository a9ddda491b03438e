"""The event dispatchers still waiting (io.waitForEvent), projected from EventDispatcher events: what an
event recorded in an environment is matched against."""

from collections.abc import Iterator
from typing import Any

from domain.dispatchers import EventDispatcher
from projections import tables
from projections.changes import Change, Kind, as_uuid

# Every event class `changes` matches (tests/unit/test_projector_events.py checks): the others skip it.
EVENTS = (EventDispatcher.DispatcherCreated, EventDispatcher.DispatcherMatched)


def changes(event: Any) -> Iterator[Change]:
    at = event.timestamp
    match event:
        case EventDispatcher.DispatcherCreated():
            yield Change(
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
            )
        case EventDispatcher.DispatcherMatched():
            yield Change(tables.event_dispatchers, {"id": event.originator_id}, {"matched_at": at, "updated_at": at})
