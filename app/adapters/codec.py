"""Turns domain events into stored rows and back, with msgspec JSON and each class's explicit topic.

Events can evolve as the eventsourcing library lets them: a class with `class_version = n` (n > 1) is stored
with its version, and an event stored at an older version is brought up to date, when read, by the class's
`upcast_v1_v2`, `upcast_v2_v3`, ... in turn (each changes the stored state in place). Then each field is
given its declared type: times become datetimes, values such as a task their class.
"""

import dataclasses
import types
import typing
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import get_topic, resolve_topic

# Importing the aggregates registers their explicit topics.
import domain.dispatchers
import domain.endpoints
import domain.environments
import domain.event_records
import domain.queues
import domain.runs
import domain.schedules  # noqa: F401
from app.adapters.json_limits import MAX_STORED_DEPTH, decode_stored

DomainEvent = CanMutateAggregate[Any]

_encoder = msgspec.json.Encoder()
# Field types JSON decodes to as they are; any other is converted when an event is read.
_AS_DECODED = {str, int, float, bool, Any, type(None), dict, list}


class StoredEvent(NamedTuple):
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class _EventClass:
    cls: type
    version: int
    times: tuple[str, ...]  # datetime fields, read with the fast parser
    typed: tuple[tuple[str, Any], ...]  # other fields needing a conversion, with their type


def encode_event(event: DomainEvent) -> StoredEvent:
    state = dict(event.__dict__)
    originator_id = state.pop("originator_id")
    originator_version = state.pop("originator_version")
    version = getattr(type(event), "class_version", 1)
    if version > 1:
        state["class_version"] = version
    return StoredEvent(originator_id, originator_version, get_topic(type(event)), _encoder.encode(state))


def decode_event(originator_id: UUID, originator_version: int, topic: str, state: bytes) -> DomainEvent:
    known = _event_class(topic)
    values = decode_stored(state)
    stored_version = values.pop("class_version", 1)
    while stored_version < known.version:
        getattr(known.cls, f"upcast_v{stored_version}_v{stored_version + 1}")(values)
        stored_version += 1
    for name in known.times:
        value = values.get(name)
        if value.__class__ is str:
            values[name] = datetime.fromisoformat(value)
    for name, hint in known.typed:
        if name in values:
            values[name] = msgspec.convert(values[name], hint, strict=False)
    values["originator_id"] = originator_id
    values["originator_version"] = originator_version
    event: Any = object.__new__(known.cls)
    object.__setattr__(event, "__dict__", values)  # events are frozen; this is how they are built, not changed
    return typing.cast(DomainEvent, event)


def decode_events(rows: Iterable[tuple[int, UUID, int, str, bytes]]) -> list[tuple[int, DomainEvent]]:
    """Rows of (position, originator_id, originator_version, topic, state) decoded as decode_event would, in
    bulk: each state straight into its class's fields by a typed msgspec decoder (times and typed values
    converted in C), falling back to decode_event for what that cannot take as it is (an older class version,
    deep nesting, a value the decoder refuses)."""
    decoded: list[tuple[int, DomainEvent]] = []
    append = decoded.append
    for position, originator_id, originator_version, topic, state in rows:
        fields = _decode_fields(_fast_decoder(topic), state)
        if fields is not None:
            values = msgspec.structs.asdict(fields)
            del values["class_version"]
            values["originator_id"] = originator_id
            values["originator_version"] = originator_version
            event: Any = object.__new__(fields.stands_for)
            object.__setattr__(event, "__dict__", values)
            append((position, event))
        else:
            append((position, decode_event(originator_id, originator_version, topic, state)))
    return decoded


def decode_fields(rows: Iterable[tuple[int, UUID, int, str, bytes]]) -> list[tuple[int, Any]]:
    """As decode_events, but each event as the struct of its fields the decoder makes, with the stream's
    coordinates, where it can (its class is its `stands_for`): what a projector reads of an event, for half
    the cost of making the event (a rebuild folds millions). An event class with properties beside its fields
    is always made, so whatever a projector reads, it reads as it would on the event."""
    decoded: list[tuple[int, Any]] = []
    append = decoded.append
    for position, originator_id, originator_version, topic, state in rows:
        fields = _decode_fields(_fast_decoder(topic), state)
        if fields is not None and not fields.has_properties:
            fields.originator_id = originator_id
            fields.originator_version = originator_version
            append((position, fields))
        else:
            append((position, decode_event(originator_id, originator_version, topic, state)))
    return decoded


def _decode_fields(decode: Any, state: bytes) -> Any:
    """The struct of the state's fields, or None when the fast decoder cannot take it as it is."""
    if decode is None or state.count(b"[") + state.count(b"{") > MAX_STORED_DEPTH:
        return None
    try:
        fields = decode(state)
    except msgspec.DecodeError:
        return None
    return fields if fields.class_version == fields.current_version else None


@cache
def _fast_decoder(topic: str) -> Any:
    """A decoder of the class's stored state into a struct of its fields (JSON values as decoded, times and
    typed fields as declared, defaults as declared; the stream's coordinates left to set), whose class knows
    the event class it `stands_for`, that class's version and whether it `has_properties`; None if it cannot
    be made."""
    known = _event_class(topic)
    hints = dict(known.typed)
    fields: list[tuple[str, Any, Any]] = [("class_version", int, 1)]
    for field in dataclasses.fields(known.cls):
        if field.name in ("originator_id", "originator_version", "class_version"):
            continue
        hint = (datetime | None) if field.name in known.times else hints.get(field.name, Any)
        if field.default is not dataclasses.MISSING:
            fields.append((field.name, hint, field.default))
        elif field.default_factory is not dataclasses.MISSING:
            fields.append((field.name, hint, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, hint))  # type: ignore[arg-type]
    fields += [("originator_id", Any, None), ("originator_version", int, 0)]
    properties = any(isinstance(value, property) for base in known.cls.__mro__ for value in vars(base).values())
    namespace = {"stands_for": known.cls, "current_version": known.version, "has_properties": properties}
    if namespace.keys() & {field[0] for field in fields}:
        return None  # a field the struct's class attributes would hide
    try:
        # Not tracked by the cycle collector: decoded JSON holds no cycles, and a replay makes millions.
        struct = msgspec.defstruct(f"Stored{known.cls.__name__}", fields, kw_only=True, namespace=namespace, gc=False)
        decoder = msgspec.json.Decoder(struct, strict=False)
    except (TypeError, ValueError):
        return None
    return decoder.decode


@cache
def _event_class(topic: str) -> _EventClass:
    cls = resolve_topic(topic)
    hints = typing.get_type_hints(cls)
    times, typed = [], []
    for field in dataclasses.fields(cls):
        if field.name in ("originator_id", "originator_version"):
            continue  # the stream's coordinates: not in the stored state
        hint = hints.get(field.name, Any)
        if hint in (datetime, datetime | None):
            times.append(field.name)
        elif not _as_decoded(hint):
            typed.append((field.name, hint))
    return _EventClass(cls, getattr(cls, "class_version", 1), tuple(times), tuple(typed))


def _as_decoded(hint: Any) -> bool:
    """Whether JSON decodes to a value of this type as it is (str, numbers, dicts and lists of those...)."""
    origin = typing.get_origin(hint)
    if origin is None:
        return hint in _AS_DECODED
    return origin in (dict, list, typing.Union, types.UnionType) and all(
        _as_decoded(argument) for argument in typing.get_args(hint)
    )


def event_state(event: DomainEvent) -> dict[str, Any]:
    """The event's own fields, JSON-ready, without the stream coordinates."""
    state: dict[str, Any] = msgspec.to_builtins(
        {k: v for k, v in event.__dict__.items() if k not in ("originator_id", "originator_version")}
    )
    return state
