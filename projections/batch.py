"""A bounded slice of the event stream folded in memory, then flushed into tables that hold the slices before.

Rows a slice creates (their first change in it is an upsert) are folded in memory and, when the tables do not
hold them yet, copied in as they are: almost every row, and the fast path. The changes of every other row (one
an earlier slice created, or an upsert of a row that exists) are applied as written, by `apply_live`, so the
result is exactly what applying every change live would give.
"""

from collections import defaultdict
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import msgspec
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.apply import apply_live, column_names
from projections.changes import Change, Kind, primary_key
from projections.registry import handlers_for
from projections.written import WrittenKeys

_json = msgspec.json.Encoder()
_UPSERT = Kind.UPSERT  # an enum member read from its class costs more than the rest of a change's fold
_LAYOUTS: dict[Table, tuple[tuple[str, ...], dict[str, Any]]] = {}  # a table's key columns and its empty row
_dialect = postgresql.dialect()  # type: ignore[no-untyped-call]


class Batch:
    def __init__(self) -> None:
        self.rows: dict[Table, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)
        self.made: list[Change] = []  # changes of the rows this batch created, in order
        self.carried: list[Change] = []  # changes of the other rows, in order
        self._carried_keys: set[tuple[Table, tuple[Any, ...]]] = set()
        self.events = 0

    def apply_events(self, events: Iterable[tuple[int, Any]]) -> None:
        """Fold the changes of each (position, event), as changes_for gives them."""
        for _, event in events:
            for handler in handlers_for(event.__class__):
                self.apply(handler(event))

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            table = change.table
            names, blank = _LAYOUTS.get(table) or _layout(table)
            key = (change.key[names[0]],) if len(names) == 1 else tuple([change.key[name] for name in names])
            rows = self.rows[table]
            row = rows.get(key)
            if row is None:
                if change.kind is not _UPSERT or (table, key) in self._carried_keys:
                    self._carried_keys.add((table, key))
                    self.carried.append(change)
                    continue
                row = rows[key] = blank.copy()
                row.update(change.key)
            self.made.append(change)
            row.update(change.values)
            if change.fill:
                for name, value in change.fill.items():
                    if row[name] is None:
                        row[name] = value

    async def flush(self, conn: AsyncConnection, written: WrittenKeys | None = None) -> None:
        """Write the batch into the tables `conn` sees (its search_path chooses them). With `written` (the keys
        of every row written to those tables before, and it is told this batch's), only the rows it may hold
        are looked for in the tables; without, all are."""
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        existing: set[tuple[Table, tuple[Any, ...]]] = set()
        for table, rows in self.rows.items():
            maybe = list(rows) if written is None else written.maybe_held(table.name, rows)
            found = await _existing(conn, table, maybe)
            existing.update((table, key) for key in found)
            await _copy(conn, schema, table, [row for key, row in rows.items() if key not in found])
        # Rows are independent of each other, so these may follow the copied rows: none of them is among those.
        replay = [change for change in self.made if (change.table, change.key_tuple()) in existing] if existing else []
        await apply_live(conn, [*replay, *self.carried])
        if written is not None:
            for table, rows in self.rows.items():
                written.add_all(table.name, rows)
            for table, key in self._carried_keys:
                written.add(table.name, key)


def _layout(table: Table) -> tuple[tuple[str, ...], dict[str, Any]]:
    layout = _LAYOUTS[table] = (primary_key(table), dict.fromkeys(column_names(table)))
    return layout


async def _existing(conn: AsyncConnection, table: Table, keys: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    if not keys:
        return set()
    names = primary_key(table)
    arrays = ", ".join(
        f"CAST(:k{i} AS {table.c[name].type.compile(dialect=_dialect)}[])" for i, name in enumerate(names)
    )
    columns = ", ".join(names)
    query = text(f"SELECT {columns} FROM {table.name} WHERE ({columns}) IN (SELECT * FROM unnest({arrays}))").columns(
        *(table.c[name] for name in names)
    )
    params = {f"k{i}": [key[i] for key in keys] for i in range(len(names))}
    return {tuple(row) for row in await conn.execute(query, params)}


async def _copy(conn: AsyncConnection, schema: str, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY the rows in: the fastest way, and rows are plain values already."""
    if not rows:
        return
    columns = list(table.c.keys())
    json_columns = [column.name for column in table.columns if isinstance(column.type, JSONB)]
    for row in rows:
        for name in json_columns:
            row[name] = _encode(row[name])
    records = list(map(itemgetter(*columns), rows)) if len(columns) > 1 else [(row[columns[0]],) for row in rows]
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table.name, records=records, columns=columns, schema_name=schema)


def _encode(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()
