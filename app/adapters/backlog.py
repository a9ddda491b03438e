"""What waits, read from the database for operators: the outbox's backlog, runs by status, the oldest due run."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Rows stay until a worker handled their message: all of them are pending; the due ones not published yet wait
# for the relay.
_OUTBOX = text(
    "SELECT count(*), count(*) FILTER (WHERE published_at IS NULL), "
    "coalesce(EXTRACT(EPOCH FROM now() - min(available_at) FILTER (WHERE published_at IS NULL "
    "AND available_at <= now())), 0) FROM outbox"
)
# Environment by environment, so each looks only at its recent runs through run_status_env_created_idx
# rather than through its whole history.
_RUNS_BY_STATUS = text(
    "SELECT r.status, count(*) FROM environments e CROSS JOIN LATERAL (SELECT status FROM run_status "
    "WHERE environment_id = e.id AND created_at >= now() - make_interval(secs => :seconds)) r "
    "GROUP BY r.status ORDER BY count(*) DESC, r.status"
)
# What the run_status_due_idx holds: runs due to execute, the oldest due first.
_OLDEST_DUE = text(
    "SELECT id, status, EXTRACT(EPOCH FROM now() - next_due_at) FROM run_status "
    "WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE') AND next_due_at <= now() "
    "ORDER BY next_due_at LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    pending: int  # rows whose message is not handled yet
    unpublished: int  # rows the relay has not published (due or not)
    oldest_due_seconds: float  # age of the oldest due row not published (0 when none)


@dataclass(frozen=True, slots=True)
class WaitingRun:
    run_id: UUID
    status: str
    waited_seconds: float  # since it was due


async def outbox_backlog(engine: AsyncEngine) -> OutboxBacklog:
    async with engine.connect() as conn:
        pending, unpublished, oldest = (await conn.execute(_OUTBOX)).one()
    return OutboxBacklog(int(pending), int(unpublished), max(0.0, float(oldest)))


async def runs_by_status(engine: AsyncEngine, since: timedelta) -> dict[str, int]:
    """Runs created in the last `since`, counted by their status now."""
    async with engine.connect() as conn:
        rows: Any = await conn.execute(_RUNS_BY_STATUS, {"seconds": since.total_seconds()})
        return {status: int(count) for status, count in rows}


async def oldest_due_run(engine: AsyncEngine) -> WaitingRun | None:
    """The run that has waited longest for its due execution to start, if any is due."""
    async with engine.connect() as conn:
        row = (await conn.execute(_OLDEST_DUE)).first()
    return None if row is None else WaitingRun(row[0], row[1], max(0.0, float(row[2])))
