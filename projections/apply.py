"""Applying read-model changes: live, inside the writer's transaction, or folded in memory for a rebuild."""

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, and_, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.changes import Change, Kind


async def apply_live(conn: AsyncConnection, changes: Iterable[Change]) -> None:
    for change in changes:
        await conn.execute(_statement(change))


def _statement(change: Change) -> Any:
    table = change.table
    if change.kind is Kind.UPSERT:
        stmt = insert(table).values({**change.key, **change.values, **change.fill})
        overwrite: dict[str, Any] = {name: stmt.excluded[name] for name in change.values}
        overwrite.update({name: func.coalesce(table.c[name], stmt.excluded[name]) for name in change.fill})
        return stmt.on_conflict_do_update(index_elements=list(change.key), set_=overwrite)
    where = and_(*(table.c[name] == value for name, value in change.key.items()))
    values: dict[str, Any] = dict(change.values)
    values.update({name: func.coalesce(table.c[name], value) for name, value in change.fill.items()})
    return update(table).where(where).values(values)


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
                row = rows[key] = {column.name: None for column in change.table.columns}
                row.update(change.key)
            row.update(change.values)
            for name, value in change.fill.items():
                if row[name] is None:
                    row[name] = value

    def table_rows(self, table: Table) -> list[dict[str, Any]]:
        return list(self.rows[table].values())
