"""Turns domain events into stored rows and back, with msgspec JSON and each class's explicit topic."""

import dataclasses
import typing
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import get_topic, resolve_topic

# Importing the aggregates registers their explicit topics.
import domain.endpoints
import domain.environments
import domain.event_records
import domain.runs  # noqa: F401
from app.adapters.json_limits import decode_stored

DomainEvent = CanMutateAggregate[Any]

_encoder = msgspec.json.Encoder()


class StoredEvent(NamedTuple):
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def encode_event(event: DomainEvent) -> StoredEvent:
    state = dict(event.__dict__)
    originator_id = state.pop("originator_id")
    originator_version = state.pop("originator_version")
    return StoredEvent(originator_id, originator_version, get_topic(type(event)), _encoder.encode(state))


def decode_event(originator_id: UUID, originator_version: int, topic: str, state: bytes) -> DomainEvent:
    cls, datetime_fields = _event_class(topic)
    values = decode_stored(state)
    for name in datetime_fields:
        value = values.get(name)
        if value.__class__ is str:
            values[name] = datetime.fromisoformat(value)
    values["originator_id"] = originator_id
    values["originator_version"] = originator_version
    event: Any = object.__new__(cls)
    object.__setattr__(event, "__dict__", values)  # events are frozen; this is how they are built, not changed
    return typing.cast(DomainEvent, event)


@cache
def _event_class(topic: str) -> tuple[type, tuple[str, ...]]:
    cls = resolve_topic(topic)
    return cls, _datetime_fields(cls)


def event_state(event: DomainEvent) -> dict[str, Any]:
    """The event's own fields, JSON-ready, without the stream coordinates."""
    state: dict[str, Any] = msgspec.to_builtins(
        {k: v for k, v in event.__dict__.items() if k not in ("originator_id", "originator_version")}
    )
    return state


@cache
def _datetime_fields(cls: type) -> tuple[str, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(f.name for f in dataclasses.fields(cls) if hints.get(f.name) in (datetime, datetime | None))
