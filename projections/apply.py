"""Applying read-model changes: live, inside the writer's transaction, or folded in memory for a rebuild."""

import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.changes import Change, Kind


async def apply_live(conn: AsyncConnection, changes: Iterable[Change]) -> None:
    """Apply the changes in order, one statement execution per shape of change where order allows: the
    n-th changes of distinct rows do not depend on each other, so those of one shape go together."""
    rounds: list[dict[Any, list[dict[str, Any]]]] = []
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for change in changes:
        row = (change.table, *change.key.values())
        turn = seen[row]
        seen[row] = turn + 1
        if turn == len(rounds):
            rounds.append(defaultdict(list))
        shape = (change.table, change.kind, tuple(change.key), tuple(change.values), tuple(change.fill))
        rounds[turn][shape].append(
            {f"p_{name}": value for part in (change.key, change.values, change.fill) for name, value in part.items()}
        )
    for shapes in rounds:
        for shape, params in shapes.items():
            await conn.execute(_statement(*shape), params)


@functools.cache
def _statement(table: Table, kind: Kind, key: tuple[str, ...], values: tuple[str, ...], fill: tuple[str, ...]) -> Any:
    """One statement per shape of change, built once, with bound parameters (its compiled form is then
    cached by SQLAlchemy too)."""

    def param(name: str) -> Any:
        return bindparam(f"p_{name}", type_=table.c[name].type)

    if kind is Kind.UPSERT:
        stmt = insert(table).values({name: param(name) for name in (*key, *values, *fill)})
        overwrite: dict[str, Any] = {name: stmt.excluded[name] for name in values}
        overwrite.update({name: func.coalesce(table.c[name], stmt.excluded[name]) for name in fill})
        return stmt.on_conflict_do_update(index_elements=list(key), set_=overwrite)
    where = and_(*(table.c[name] == param(name) for name in key))
    changes: dict[str, Any] = {name: param(name) for name in values}
    changes.update({name: func.coalesce(table.c[name], param(name)) for name in fill})
    return update(table).where(where).values(changes)


@functools.cache
def column_names(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns)


class Fold:
    """Read-model rows held in memory, changed exactly as apply_live would change them in the database."""

    def __init__(self) -> None:
        self.rows: dict[Table, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            rows = self.rows[change.table]
            key = change.key_tuple()
            row = rows.get(key)
            if row is None:
                if change.kind is not Kind.UPSERT:
                    continue
                row = rows[key] = dict.fromkeys(column_names(change.table))
                row.update(change.key)
            row.update(change.values)
            for name, value in change.fill.items():
                if row[name] is None:
                    row[name] = value

    def table_rows(self, table: Table) -> list[dict[str, Any]]:
        return list(self.rows[table].values())
