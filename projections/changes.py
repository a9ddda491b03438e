"""A read-model change: what one event does to one row, applied live or folded during a rebuild."""

import functools
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import Table


class Kind(Enum):
    UPSERT = "upsert"  # insert the row, or overwrite the given columns of an existing one
    UPDATE = "update"  # change the given columns of an existing row; nothing when it is missing


class Change(msgspec.Struct, frozen=True):
    """A struct, not a dataclass: a replay makes one or more per event, and a frozen dataclass is slow to make."""

    table: Table
    key: dict[str, Any]
    values: dict[str, Any]
    kind: Kind = Kind.UPDATE
    fill: dict[str, Any] = {}  # written only where the column is still NULL (each change gets its own dict)

    def key_tuple(self) -> tuple[Any, ...]:
        names = primary_key(self.table)
        if len(names) == 1:
            return (self.key[names[0]],)
        return tuple([self.key[name] for name in names])


@functools.cache
def primary_key(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.primary_key.columns)


def as_uuid(value: str | UUID) -> UUID:
    if isinstance(value, UUID):
        return value
    # The same few ids (environments, endpoints) come again and again in a replay: parsed once each.
    parsed = _PARSED.get(value)
    if parsed is None:
        if len(_PARSED) >= _PARSED_AT_MOST:
            _PARSED.clear()
        parsed = _PARSED[value] = UUID(value)
    return parsed


_PARSED: dict[str, UUID] = {}
_PARSED_AT_MOST = 4096


# What one event (of a class a projector handles) changes.
Handler = Callable[[Any], Sequence[Change]]


class Projector:
    """One read model's projector: what each event class changes (`handlers`). A class matches the first entry
    it is or derives from (as a `match` on the classes in that order would choose)."""

    def __init__(self, handlers: dict[type, Handler]) -> None:
        self.handlers = handlers
        self.events = tuple(handlers)
        self.handler_for = functools.cache(self._first_handler)

    def _first_handler(self, event_class: type) -> Handler | None:
        return next((handler for cls, handler in self.handlers.items() if issubclass(event_class, cls)), None)

    def __call__(self, event: Any) -> Sequence[Change]:
        handler = self.handler_for(event.__class__)
        return handler(event) if handler else ()
