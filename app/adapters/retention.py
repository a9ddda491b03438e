"""Removing finished runs from the database in short batches, beside live traffic (see docs/operations.md).

One batch is one transaction, one at a time across processes: it locks up to `limit` runs that ended before the
cutoff (skipping any a writer holds), keeps those something is still to be delivered for, and deletes the others'
events and read-model rows, their dispatchers (rows and streams), and the event records no remaining run was
started by. What it deletes is handed to `keep` (the archive) before the transaction commits; a dry run rolls it
back.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.codec import decode_event
from domain.retention import FinishedRun, removable
from domain.status import RunStatus
from projections.apply import apply_live
from projections.registry import changes_for

_FIRST = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), UUID(int=0))

ONE_SWEEPER = 7342004  # the advisory lock a batch holds: sweepers (workers, the command) take turns
_TAKE_TURN = text("SELECT pg_advisory_xact_lock(:lock)")
_COUNT = text("SELECT count(*) FROM run_status WHERE completed_at < :cutoff")
_CANDIDATES = text(
    "SELECT id, event_record_id, status, completed_at FROM run_status "
    "WHERE completed_at < :cutoff AND (completed_at, id) > (:after_at, :after_id) "
    "ORDER BY completed_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_DISPATCHERS = text("SELECT id, run_id FROM event_dispatchers WHERE run_id = ANY(:runs)")
# Outbox keys start with the id of what the message is about (a run, `run/task`, a dispatcher, an event
# record); a DispatchEvent also names the event record it hands over. The outbox holds only messages not yet
# handled, so it is small: one scan a batch.
_PENDING = text(
    "SELECT left(key, 36) AS owner, headers ->> 'type' AS type, value FROM outbox "
    "WHERE left(key, 36) = ANY(:keys) OR headers ->> 'type' = 'DispatchEvent'"
)
_UNUSED_RECORDS = text(
    "SELECT r FROM unnest(CAST(:records AS uuid[])) AS r "
    "WHERE NOT EXISTS (SELECT 1 FROM run_status s WHERE s.event_record_id = r)"
)
_DELETE_DISPATCHERS = text("DELETE FROM event_dispatchers WHERE id = ANY(:ids)")
_DELETE_RUNS = text("DELETE FROM run_status WHERE id = ANY(:ids)")
_DELETE_EVENTS = text(
    "DELETE FROM events WHERE originator_id = ANY(:ids) "
    "RETURNING position, originator_id, originator_version, topic, state, recorded_at"
)
_EXISTING = text("SELECT DISTINCT originator_id FROM events WHERE originator_id = ANY(:ids)")
_RESTORE_EVENT = text(
    "INSERT INTO events (position, originator_id, originator_version, topic, state, recorded_at) "
    "OVERRIDING SYSTEM VALUE VALUES (:position, :id, :version, :topic, :state, :recorded_at)"
)


@dataclass(frozen=True, slots=True)
class StoredRow:
    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Removed:
    """What one batch removed: each aggregate's stored events, by kind, with the run each belonged to."""

    runs: dict[UUID, datetime] = field(default_factory=dict)  # run id: when it ended
    dispatchers: dict[UUID, UUID] = field(default_factory=dict)  # dispatcher id: its run
    event_records: dict[UUID, UUID] = field(default_factory=dict)  # event record id: a removed run it started
    events: dict[UUID, list[StoredRow]] = field(default_factory=dict)  # aggregate id: its events

    @property
    def event_count(self) -> int:
        return sum(len(rows) for rows in self.events.values())


@dataclass(frozen=True, slots=True)
class Batch:
    removed: Removed
    kept: int  # old finished runs something is still to be delivered for
    seen: int  # candidates looked at
    after: tuple[datetime, UUID]  # where the next batch starts


Keep = Callable[[Removed], Awaitable[None]]


class RetentionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def count(self, cutoff: datetime) -> int:
        """Runs that ended before the cutoff (an estimate of the work: some may be kept)."""
        async with self.engine.connect() as conn:
            return int((await conn.execute(_COUNT, {"cutoff": cutoff})).scalar_one())

    async def remove_batch(
        self,
        cutoff: datetime,
        limit: int,
        after: tuple[datetime, UUID] = _FIRST,
        keep: Keep | None = None,
        dry_run: bool = False,
    ) -> Batch:
        async with self.engine.connect() as conn, conn.begin() as transaction:
            # One batch at a time across processes: two batches removing runs of one event record at once
            # would each see the other's run still there, and neither would remove the record.
            await conn.execute(_TAKE_TURN, {"lock": ONE_SWEEPER})
            params = {"cutoff": cutoff, "after_at": after[0], "after_id": after[1], "limit": limit}
            candidates = (await conn.execute(_CANDIDATES, params)).all()
            if not candidates:
                return Batch(Removed(), 0, 0, after)
            run_ids = [row.id for row in candidates]
            dispatchers = {row.id: row.run_id for row in await conn.execute(_DISPATCHERS, {"runs": run_ids})}
            keys = [str(key) for key in (*run_ids, *dispatchers, *{row.event_record_id for row in candidates})]
            pending, handed_over = _pending(await conn.execute(_PENDING, {"keys": keys}))
            pending |= {str(dispatchers[d]) for d in dispatchers if str(d) in pending}
            removed = Removed()
            for row in candidates:
                run = FinishedRun(RunStatus(row.status), row.completed_at, str(row.id) in pending)
                if removable(run, cutoff):
                    removed.runs[row.id] = row.completed_at
            for dispatcher_id, run_id in dispatchers.items():
                if run_id in removed.runs:
                    removed.dispatchers[dispatcher_id] = run_id
            ids = [*removed.runs, *removed.dispatchers]
            if ids:
                await conn.execute(_DELETE_DISPATCHERS, {"ids": list(removed.dispatchers)})
                await conn.execute(_DELETE_RUNS, {"ids": list(removed.runs)})
                started_by = {row.event_record_id: row.id for row in candidates if row.id in removed.runs}
                unused = (await conn.execute(_UNUSED_RECORDS, {"records": list(started_by)})).scalars().all()
                for record in unused:
                    if str(record) not in pending and str(record) not in handed_over:
                        removed.event_records[record] = started_by[record]
                ids += list(removed.event_records)
                for row in await conn.execute(_DELETE_EVENTS, {"ids": ids}):
                    removed.events.setdefault(row.originator_id, []).append(StoredRow(*row))
            if keep is not None and removed.runs:
                await keep(removed)
            if dry_run:
                await transaction.rollback()
            last = candidates[-1]
            return Batch(removed, len(candidates) - len(removed.runs), len(candidates), (last.completed_at, last.id))

    async def restore(self, aggregates: Sequence[Sequence[StoredRow]]) -> int:
        """Put archived streams back with their positions, and their read-model rows; a stream that is in
        the store already is left as it is. Returns how many streams were restored."""
        streams = [list(rows) for rows in aggregates if rows]
        async with self.engine.begin() as conn:
            ids = [rows[0].originator_id for rows in streams]
            present = set((await conn.execute(_EXISTING, {"ids": ids})).scalars().all())
            missing = [rows for rows in streams if rows[0].originator_id not in present]
            rows = sorted((row for stream in missing for row in stream), key=lambda row: row.position)
            if not rows:
                return 0
            await conn.execute(
                _RESTORE_EVENT,
                [
                    {
                        "position": row.position,
                        "id": row.originator_id,
                        "version": row.originator_version,
                        "topic": row.topic,
                        "state": row.state,
                        "recorded_at": row.recorded_at,
                    }
                    for row in rows
                ],
            )
            events = [decode_event(r.originator_id, r.originator_version, r.topic, r.state) for r in rows]
            await apply_live(conn, changes_for(events))
        return len(missing)


def _pending(rows: Any) -> tuple[set[str], set[str]]:
    """The ids outbox rows are keyed by, and the event records DispatchEvent messages hand over."""
    owners: set[str] = set()
    handed_over: set[str] = set()
    for owner, kind, value in rows:
        owners.add(owner)
        if kind == "DispatchEvent":
            record = msgspec.json.decode(value).get("event_record_id")
            if isinstance(record, str):
                handed_over.add(record)
    return owners, handed_over
