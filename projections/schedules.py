"""Schedules and queues, projected from Schedule and Queue events."""

from collections.abc import Iterator
from typing import Any

from domain.queues import Queue
from domain.schedules import Schedule
from projections import tables
from projections.changes import Change, Kind, as_uuid

# Every event class `changes` matches (tests/unit/test_projector_events.py checks): the others skip it.
EVENTS = (
    Schedule.ScheduleRegistered,
    Schedule.ScheduleChanged,
    Schedule.ScheduleTicked,
    Schedule.ScheduleStopped,
    Queue.QueueCreated,
    Queue.QueueLimitChanged,
)


def changes(event: Any) -> Iterator[Change]:
    at = event.timestamp
    key = {"id": event.originator_id}
    match event:
        case Schedule.ScheduleRegistered():
            yield Change(
                tables.schedules,
                key,
                {
                    "environment_id": as_uuid(event.environment_id),
                    "endpoint_id": as_uuid(event.endpoint_id),
                    "key": event.key,
                    "owner": event.owner,
                    "dynamic": event.dynamic,
                    "schedule": event.schedule,
                    "metadata": event.metadata,
                    "active": True,
                    "next_tick_at": event.next_tick_at,
                    "last_tick_at": None,
                    "created_at": at,
                    "updated_at": at,
                },
                Kind.UPSERT,
            )
        case Schedule.ScheduleChanged():
            yield Change(
                tables.schedules,
                key,
                {
                    "endpoint_id": as_uuid(event.endpoint_id),
                    "schedule": event.schedule,
                    "metadata": event.metadata,
                    "active": True,
                    "next_tick_at": event.next_tick_at,
                    "updated_at": at,
                },
            )
        case Schedule.ScheduleTicked():
            yield Change(
                tables.schedules,
                key,
                {"last_tick_at": event.tick_at, "next_tick_at": event.next_tick_at, "updated_at": at},
            )
        case Schedule.ScheduleStopped():
            yield Change(tables.schedules, key, {"active": False, "next_tick_at": None, "updated_at": at})
        case Queue.QueueCreated():
            yield Change(
                tables.queues,
                key,
                {
                    "environment_id": as_uuid(event.environment_id),
                    "name": event.name,
                    "concurrency_limit": event.limit,
                    "created_at": at,
                    "updated_at": at,
                },
                Kind.UPSERT,
            )
        case Queue.QueueLimitChanged():
            yield Change(tables.queues, key, {"concurrency_limit": event.limit, "updated_at": at})
