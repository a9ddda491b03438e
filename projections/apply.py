"""Applying read-model changes: live, inside the writer's transaction, or folded in memory for a rebuild."""

import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import Boolean, DateTime, Integer, Table, Text, Uuid, and_, bindparam, func, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from projections.changes import Change, Kind

Shape = tuple[Table, Kind, tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # table, kind, key, values, fill


async def apply_live(conn: AsyncConnection, changes: Iterable[Change]) -> None:
    """Apply the changes in order, one statement per shape of change where order allows: the n-th changes of
    distinct rows do not depend on each other, so those of one shape go together, their values as arrays."""
    for shapes in _rounds(changes):
        for shape, batch in shapes.items():
            if _array_columns(*shape) is None:
                statement = _row_statement(*shape)
                params = [
                    {f"p_{name}": value for part in (c.key, c.values, c.fill) for name, value in part.items()}
                    for c in batch
                ]
                await conn.execute(statement, params)
            else:
                await conn.execute(_array_statement(*shape), array_params(shape, batch, "a_"))


def one_round(changes: Iterable[Change]) -> dict[Shape, list[Change]] | None:
    """The changes by shape, when each row is changed once and every shape goes from arrays: then they can
    all go in one statement (array_sql of each shape); else None."""
    rounds = _rounds(changes)
    if not rounds:
        return {}
    if len(rounds) > 1 or any(_array_columns(*shape) is None for shape in rounds[0]):
        return None
    return dict(rounds[0])


def _rounds(changes: Iterable[Change]) -> list[dict[Shape, list[Change]]]:
    rounds: list[dict[Shape, list[Change]]] = []
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for change in changes:
        row = (change.table, *change.key.values())
        turn = seen[row]
        seen[row] = turn + 1
        if turn == len(rounds):
            rounds.append(defaultdict(list))
        shape = (change.table, change.kind, tuple(change.key), tuple(change.values), tuple(change.fill))
        rounds[turn][shape].append(change)
    return rounds


def array_params(shape: Shape, batch: list[Change], prefix: str) -> dict[str, list[Any]]:
    """Each column's values over the batch, as one array parameter named `<prefix><column>` (JSON as text)."""
    columns: dict[str, list[Any]] = {}
    arrays = _array_columns(*shape)
    assert arrays is not None
    for name, as_json in arrays:
        values = [c.key[name] if name in c.key else c.values[name] if name in c.values else c.fill[name] for c in batch]
        if as_json is not None:
            values = [_json_text(value, as_json) for value in values]
        columns[f"{prefix}{name}"] = values
    return columns


def _json_text(value: Any, none_as_null: bool) -> str | None:
    if value is None and none_as_null:
        return None
    return _json.encode(value).decode()


_json = msgspec.json.Encoder()
# The PostgreSQL array type each column type is sent as; a JSON column goes as text, cast row by row.
_ARRAY_TYPES: dict[type, str] = {
    Uuid: "uuid",
    Text: "text",
    Integer: "integer",
    Boolean: "boolean",
    DateTime: "timestamptz",
    JSONB: "text",
}


def _array_type(column_type: Any) -> str | None:
    if isinstance(column_type, DateTime) and not column_type.timezone:
        return None  # naive times: not sent as timestamptz
    return _ARRAY_TYPES.get(type(column_type))


@functools.cache
def _array_columns(
    table: Table, kind: Kind, key: tuple[str, ...], values: tuple[str, ...], fill: tuple[str, ...]
) -> tuple[tuple[str, bool | None], ...] | None:
    """The shape's columns, each with None or, for a JSON column, whether None is SQL NULL; None when a
    column's type cannot go as an array (the shape then goes row by row)."""
    names = (*key, *values, *fill)
    if not all(_array_type(table.c[name].type) for name in names):
        return None
    return tuple(
        (
            name,
            bool(getattr(table.c[name].type, "none_as_null", False)) if isinstance(table.c[name].type, JSONB) else None,
        )
        for name in names
    )


@functools.cache
def _array_statement(
    table: Table, kind: Kind, key: tuple[str, ...], values: tuple[str, ...], fill: tuple[str, ...]
) -> Any:
    return text(array_sql((table, kind, key, values, fill), "a_"))


def array_sql(shape: Shape, prefix: str) -> str:
    """The statement applying a batch of changes of one shape, from array parameters `<prefix><column>`."""
    table, kind, key, values, fill = shape
    names = (*key, *values, *fill)
    arrays = ", ".join(f"CAST(:{prefix}{name} AS {_array_type(table.c[name].type)}[])" for name in names)
    aliases = ", ".join(f'"{name}"' for name in names)
    source = f"unnest({arrays}) AS m({aliases})"

    def column(name: str) -> str:
        return f'CAST(m."{name}" AS jsonb)' if isinstance(table.c[name].type, JSONB) else f'm."{name}"'

    if kind is Kind.UPSERT:
        sets = [f'"{name}" = EXCLUDED."{name}"' for name in values]
        sets += [f'"{name}" = coalesce(t."{name}", EXCLUDED."{name}")' for name in fill]
        conflict = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
        keys = ", ".join(f'"{name}"' for name in key)
        return (
            f'INSERT INTO "{table.name}" AS t ({aliases}) SELECT {", ".join(column(n) for n in names)} FROM {source} '
            f"ON CONFLICT ({keys}) {conflict}"
        )
    sets = [f'"{name}" = {column(name)}' for name in values]
    sets += [f'"{name}" = coalesce(t."{name}", {column(name)})' for name in fill]
    # The key again as `= ANY(array)`: the rows are then found by index, whatever join the planner picks (it
    # takes unnest for a few rows, and would hash-join a small table by scanning it whole).
    where = " AND ".join(
        f't."{name}" = m."{name}" AND t."{name}" = ANY(CAST(:{prefix}{name} AS {_array_type(table.c[name].type)}[]))'
        for name in key
    )
    return f'UPDATE "{table.name}" AS t SET {", ".join(sets)} FROM {source} WHERE {where}'


@functools.cache
def _row_statement(
    table: Table, kind: Kind, key: tuple[str, ...], values: tuple[str, ...], fill: tuple[str, ...]
) -> Any:
    """With bound parameters (its compiled form is then cached by SQLAlchemy too)."""

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
