"""A read-model change: what one event does to one row, applied live or folded during a rebuild."""

import functools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from uuid import UUID

from sqlalchemy import Table


class Kind(Enum):
    UPSERT = "upsert"  # insert the row, or overwrite the given columns of an existing one
    UPDATE = "update"  # change the given columns of an existing row; nothing when it is missing


@dataclass(frozen=True, slots=True)
class Change:
    table: Table
    key: dict[str, Any]
    values: dict[str, Any]
    kind: Kind = Kind.UPDATE
    fill: dict[str, Any] = field(default_factory=dict)  # written only where the column is still NULL

    def key_tuple(self) -> tuple[Any, ...]:
        names = primary_key(self.table)
        if len(names) == 1:
            return (self.key[names[0]],)
        return tuple([self.key[name] for name in names])


@functools.cache
def primary_key(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.primary_key.columns)


def as_uuid(value: str | UUID) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
