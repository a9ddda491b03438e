"""The async event store on PostgreSQL: append with optimistic concurrency, load, read all in order.

What a write changes shares one transaction (a UnitOfWork): its events, the read-model changes they make,
its outbox rows, and what lies beside the events (the sealed API keys, a run's withdrawn executions).
"""

import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import Aggregate
from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.coalesce import Coalescer
from app.adapters.codec import DomainEvent, decode_event, decode_events, decode_fields, encode_event
from app.adapters.db import direct, reading
from app.adapters.group_commit import Write, group_commit
from app.observability import tracing
from projections.apply import Shape, apply_live, array_params, array_sql, one_round
from projections.registry import changes_for

A = TypeVar("A", bound=Aggregate)
_json = msgspec.json.Encoder()

# One statement for all the rows of a write, from arrays (not one execution per row: PostgreSQL's cost per
# statement is most of an insert's), in the order given: positions and outbox ids follow it.
_EVENTS_SQL = (
    "INSERT INTO events (originator_id, originator_version, topic, state) SELECT i, v, t, s "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[]), CAST(:topics AS text[]), "
    "CAST(:states AS bytea[])) WITH ORDINALITY AS e(i, v, t, s, n) ORDER BY n"
)
_OUTBOX_SQL = (
    "INSERT INTO outbox (topic, key, value, headers, available_at) "
    "SELECT t, k, v, CAST(h AS jsonb), COALESCE(a, now()) "
    "FROM unnest(CAST(:o_topics AS text[]), CAST(:o_keys AS text[]), CAST(:o_values AS bytea[]), "
    "CAST(:o_headers AS text[]), CAST(:o_available AS timestamptz[])) WITH ORDINALITY AS m(t, k, v, h, a, n) ORDER BY n"
)
_INSERT_EVENTS = text(_EVENTS_SQL)
_INSERT_OUTBOX = text(_OUTBOX_SQL)
_WITHDRAW_EXECUTIONS = text("DELETE FROM outbox WHERE key = :key AND headers ->> 'type' = 'ExecuteJobRun'")
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))")
_EXECUTING = text(
    "SELECT count(*) FROM run_status WHERE environment_id = :env AND concurrency_key = :key AND status = 'EXECUTING'"
)
_QUEUE_LIMIT = text("SELECT concurrency_limit FROM queues WHERE environment_id = :env AND name = :name")
_SAVE_SECRET = text(
    "INSERT INTO environment_secrets (environment_id, sealed_api_key) VALUES (:id, :sealed) "
    "ON CONFLICT (environment_id) DO UPDATE SET sealed_api_key = EXCLUDED.sealed_api_key"
)
_DELETE_SECRET = text("DELETE FROM environment_secrets WHERE environment_id = :id")
_UPDATE_SECRET = text("UPDATE environment_secrets SET sealed_api_key = :sealed WHERE environment_id = :id")
# Row locks make concurrent start-ups (and a rotation beside them) take turns: each row is sealed once.
_SECRETS = text(
    "SELECT s.environment_id, coalesce(e.slug, s.environment_id::text) AS slug, s.sealed_api_key "
    "FROM environment_secrets s LEFT JOIN environments e ON e.id = s.environment_id ORDER BY 2 FOR UPDATE OF s"
)
_SECRETS_STARTING = text(
    "SELECT environment_id, sealed_api_key FROM environment_secrets WHERE starts_with(sealed_api_key, :prefix) "
    "FOR UPDATE"
)
_LOAD = text(
    "SELECT originator_version, topic, state FROM events WHERE originator_id = :id ORDER BY originator_version"
)
_LOAD_MANY = text(
    "SELECT originator_id, originator_version, topic, state FROM events WHERE originator_id = ANY(:ids) "
    "ORDER BY originator_id, originator_version"
)
# Only below the oldest running transaction: a reader must not pass an event that commits later
# with a lower position (the commit-order gap).
_READ_ALL_SQL = (
    "SELECT position, originator_id, originator_version, topic, state FROM events "
    "WHERE position > $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY position LIMIT $2"
)
_READ_COMMITTED_SQL = (
    "SELECT position, originator_id, originator_version, topic, state FROM events "
    "WHERE position > $1 ORDER BY position LIMIT $2"
)


class ConcurrencyConflict(Exception):
    """Another writer appended to the same aggregate first."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    available_at: Any = None


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def save(self, *aggregates: Aggregate) -> list[DomainEvent]:
        events: list[DomainEvent] = [e for aggregate in aggregates for e in aggregate.collect_events()]
        await self.append(events)
        return events

    async def append(self, events: Sequence[DomainEvent]) -> None:
        if not events:
            return
        with _conflicts():
            await self.conn.execute(_INSERT_EVENTS, _event_columns(events))
        await apply_live(self.conn, changes_for(events))

    async def withdraw_executions(self, key: str) -> None:
        """Delete the execution rows of the run `key` names (what a cancel withdraws)."""
        await self.conn.execute(_WITHDRAW_EXECUTIONS, {"key": key})

    async def lock(self, name: str) -> None:
        """Take turns with every other transaction that locks `name`, until this one ends."""
        await self.conn.execute(_LOCK, {"lock": name})

    async def executing(self, environment_id: UUID, concurrency_key: str) -> int:
        """How many runs sharing the concurrency key execute now (take the key's lock first)."""
        params = {"env": environment_id, "key": concurrency_key}
        return int((await self.conn.execute(_EXECUTING, params)).scalar_one())

    async def queue_limit(self, environment_id: UUID, name: str) -> int | None:
        """The limit of the named queue (concurrency group), when it has a row."""
        params = {"env": environment_id, "name": name}
        limit = (await self.conn.execute(_QUEUE_LIMIT, params)).scalar()
        return None if limit is None else int(limit)

    async def save_secret(self, environment_id: UUID, sealed: str) -> None:
        await self.conn.execute(_SAVE_SECRET, {"id": environment_id, "sealed": sealed})

    async def delete_secret(self, environment_id: UUID) -> None:
        await self.conn.execute(_DELETE_SECRET, {"id": environment_id})

    async def secrets(self, starting_with: str | None = None) -> Sequence[Row[Any]]:
        """Every sealed key (environment_id, slug, sealed_api_key), or those starting with a prefix; locked
        until the transaction ends."""
        if starting_with is None:
            return (await self.conn.execute(_SECRETS)).all()
        return (await self.conn.execute(_SECRETS_STARTING, {"prefix": starting_with})).all()

    async def update_secrets(self, sealed: dict[UUID, str]) -> None:
        if sealed:
            await self.conn.execute(_UPDATE_SECRET, [{"id": key, "sealed": value} for key, value in sealed.items()])

    async def enqueue(self, *messages: OutboxMessage) -> None:
        await self.conn.execute(_INSERT_OUTBOX, _outbox_columns(messages))


class EventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._reads = reading(engine)
        self._direct = direct(engine)
        self._commits = group_commit(self._gathered, ConcurrencyConflict)
        self._loads: Coalescer[UUID, list[DomainEvent]] = Coalescer(self._load_many)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        with tracing.span("db transaction", attributes={"db.system": "postgresql"}):
            async with self.engine.begin() as conn:
                yield UnitOfWork(conn)

    @asynccontextmanager
    async def _gathered(self) -> AsyncIterator["_Gathered"]:
        """What a group commit hands over, written when the block ends (see _Gathered)."""
        batch = _Gathered()
        yield batch
        await self._write(batch.events, batch.messages)

    async def _write(self, events: Sequence[DomainEvent], messages: Sequence[OutboxMessage]) -> None:
        """Events, their read-model changes and outbox rows, atomically: as one statement (its own transaction:
        no BEGIN, no COMMIT, a single round trip) when each read-model row changes once; else in a transaction."""
        changes = one_round(changes_for(events))
        if changes is None:
            async with self.transaction() as uow:
                await uow.append(events)
                if messages:
                    await uow.enqueue(*messages)
            return
        if not events and not messages:
            return
        shapes = tuple(changes)
        params: dict[str, Any] = _event_columns(events) if events else {}
        for number, shape in enumerate(shapes):
            params.update(array_params(shape, changes[shape], f"c{number}_"))
        if messages:
            params.update(_outbox_columns(messages))
        statement = _one_statement(bool(events), shapes, bool(messages))
        with tracing.span("db transaction", attributes={"db.system": "postgresql"}), _conflicts():
            await self._direct.execute(statement, params)

    async def save(self, *aggregates: Aggregate) -> list[DomainEvent]:
        async with self.transaction() as uow:
            return await uow.save(*aggregates)

    async def commit(self, events: Sequence[DomainEvent], messages: Sequence[OutboxMessage] = ()) -> None:
        """Append the events and enqueue the messages atomically, in a transaction shared with other
        concurrent commits of this process (see app.adapters.group_commit)."""
        with tracing.span("db commit", attributes={"db.system": "postgresql", "jobs.events": len(events)}):
            await self._commits(Write(events, messages))

    async def load_events(self, aggregate_id: UUID, conn: AsyncConnection | None = None) -> list[DomainEvent]:
        """The aggregate's events; outside a transaction, concurrent loads share one query."""
        if conn is None:
            return await self._loads(aggregate_id)
        result = await conn.execute(_LOAD, {"id": aggregate_id})
        return [decode_event(aggregate_id, version, topic, state) for version, topic, state in result]

    async def _load_many(self, aggregate_ids: list[UUID]) -> list[list[DomainEvent] | BaseException]:
        result = await self._direct.fetch(_LOAD_MANY, {"ids": list(set(aggregate_ids))})
        found: dict[UUID, list[DomainEvent]] = {}
        for originator_id, version, topic, state in result:
            found.setdefault(originator_id, []).append(decode_event(originator_id, version, topic, state))
        return [found.get(aggregate_id, []) for aggregate_id in aggregate_ids]

    async def get(self, aggregate_id: UUID, cls: type[A], conn: AsyncConnection | None = None) -> A | None:
        events = await self.load_events(aggregate_id, conn)
        aggregate: Any = None
        for event in events:
            aggregate = event.mutate(aggregate)
        if aggregate is not None and not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not a {cls.__name__}")
        return aggregate

    async def read_all(
        self, after: int = 0, limit: int = 1000, conn: AsyncConnection | None = None
    ) -> list[tuple[int, DomainEvent]]:
        """Events after `after` in global order. On a given connection (one that holds the events table
        locked against writers, as a rebuild does) every committed event is read; otherwise only those
        below the oldest running transaction."""
        return decode_events(await self._read_rows(after, limit, conn))

    async def read_all_fields(
        self, after: int = 0, limit: int = 1000, conn: AsyncConnection | None = None
    ) -> list[tuple[int, Any]]:
        """As read_all, each event as the struct of its fields where it can be (codec.decode_fields): all a
        projector reads of it, made for half the cost. What a rebuild folds."""
        return decode_fields(await self._read_rows(after, limit, conn))

    async def _read_rows(self, after: int, limit: int, conn: AsyncConnection | None) -> list[Any]:
        if conn is None:
            async with self._reads.connect() as own:
                return await _fetch(own, _READ_ALL_SQL, after, limit)
        return await _fetch(conn, _READ_COMMITTED_SQL, after, limit)


async def _fetch(conn: AsyncConnection, sql: str, *args: Any) -> list[Any]:
    """Rows straight from the driver (asyncpg records, read like tuples): a page of events is thousands of rows,
    each of which SQLAlchemy would wrap."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    rows: list[Any] = await driver.fetch(sql, *args)
    return rows


class _Gathered:
    """A group commit's events and outbox rows, gathered to be written together (EventStore._write)."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.messages: list[OutboxMessage] = []

    async def append(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)

    async def enqueue(self, *messages: OutboxMessage) -> None:
        self.messages.extend(messages)


@functools.lru_cache(maxsize=256)
def _one_statement(events: bool, shapes: tuple[Shape, ...], messages: bool) -> Any:
    """Every part of a write as one statement: the events, each shape of read-model change, the outbox rows
    (data-modifying WITH clauses, all applied or none)."""
    parts = [_EVENTS_SQL] if events else []
    parts.extend(array_sql(shape, f"c{number}_") for number, shape in enumerate(shapes))
    if messages:
        parts.append(_OUTBOX_SQL)
    *first, last = parts
    clauses = ", ".join(f"w{number} AS ({sql})" for number, sql in enumerate(first))
    return text(f"WITH {clauses} {last}" if clauses else last)


@contextmanager
def _conflicts() -> Iterator[None]:
    """An append to a stream at a version already taken raises ConcurrencyConflict."""
    try:
        yield
    except IntegrityError as error:
        if "events_pkey" in str(error.orig):
            raise ConcurrencyConflict(str(error.orig)) from None
        raise
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == "events_pkey":
            raise ConcurrencyConflict(str(error)) from None
        raise


def _event_columns(events: Sequence[DomainEvent]) -> dict[str, list[Any]]:
    stored = [encode_event(event) for event in events]
    return {
        "ids": [row.originator_id for row in stored],
        "versions": [row.originator_version for row in stored],
        "topics": [row.topic for row in stored],
        "states": [row.state for row in stored],
    }


def _outbox_columns(messages: Sequence[OutboxMessage]) -> dict[str, list[Any]]:
    return {
        "o_topics": [m.topic for m in messages],
        "o_keys": [m.key for m in messages],
        "o_values": [m.value for m in messages],
        "o_headers": [_json.encode(m.headers).decode() for m in messages],
        "o_available": [m.available_at for m in messages],
    }
