"""Schedules and queues, projected from Schedule and Queue events."""

from collections.abc import Sequence
from typing import Any

from domain.queues import Queue
from domain.schedules import Schedule
from projections import tables
from projections.changes import Change, Handler, Kind, Projector, as_uuid


def _registered(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.schedules,
            {"id": event.originator_id},
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
        ),
    )


def _changed(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.schedules,
            {"id": event.originator_id},
            {
                "endpoint_id": as_uuid(event.endpoint_id),
                "schedule": event.schedule,
                "metadata": event.metadata,
                "active": True,
                "next_tick_at": event.next_tick_at,
                "updated_at": event.timestamp,
            },
        ),
    )


def _ticked(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.schedules,
            {"id": event.originator_id},
            {"last_tick_at": event.tick_at, "next_tick_at": event.next_tick_at, "updated_at": event.timestamp},
        ),
    )


def _stopped(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.schedules,
            {"id": event.originator_id},
            {"active": False, "next_tick_at": None, "updated_at": event.timestamp},
        ),
    )


def _queue_created(event: Any) -> Sequence[Change]:
    at = event.timestamp
    return (
        Change(
            tables.queues,
            {"id": event.originator_id},
            {
                "environment_id": as_uuid(event.environment_id),
                "name": event.name,
                "concurrency_limit": event.limit,
                "created_at": at,
                "updated_at": at,
            },
            Kind.UPSERT,
        ),
    )


def _limit_changed(event: Any) -> Sequence[Change]:
    return (
        Change(
            tables.queues,
            {"id": event.originator_id},
            {"concurrency_limit": event.limit, "updated_at": event.timestamp},
        ),
    )


# What each event class changes; a class matches the first entry it is (or derives from).
HANDLERS: dict[type, Handler] = {
    Schedule.ScheduleRegistered: _registered,
    Schedule.ScheduleChanged: _changed,
    Schedule.ScheduleTicked: _ticked,
    Schedule.ScheduleStopped: _stopped,
    Queue.QueueCreated: _queue_created,
    Queue.QueueLimitChanged: _limit_changed,
}
changes = Projector(HANDLERS)
EVENTS = changes.events
handler_for = changes.handler_for
