"""The read side for runs: lists with filters and cursors, and a run as it was at a moment."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import cast

from app.codec import event_state
from app.errors import NotFound
from app.store import EventStore
from domain.runs import JobRun
from domain.tasks import iso_or_none
from projections import tables
from projections.apply import Fold
from projections.run_status import changes as run_status_changes

MAX_TAKE = 50
RUNS = tables.run_status


@dataclass(frozen=True, slots=True)
class RunFilter:
    job: str | None = None
    status: str | None = None
    tag: str | None = None


async def list_runs(
    engine: AsyncEngine, environment_id: UUID, where: RunFilter, take: int, cursor: UUID | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Runs newest first; the cursor is the id of the last run of the previous page."""
    conditions = [RUNS.c.environment_id == environment_id]
    if where.job is not None:
        conditions.append(RUNS.c.job_slug == where.job)
    if where.status is not None:
        conditions.append(RUNS.c.status == where.status)
    if where.tag is not None:
        conditions.append(RUNS.c.tags.contains(cast([where.tag], JSONB)))
    async with engine.connect() as conn:
        if cursor is not None:
            after = (await conn.execute(select(RUNS.c.created_at).where(RUNS.c.id == cursor))).scalar()
            if after is not None:
                conditions.append(tuple_(RUNS.c.created_at, RUNS.c.id) < tuple_(after, cursor))
        query = select(RUNS).where(and_(*conditions)).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        rows = (await conn.execute(query.limit(take + 1))).all()
    page = [run_summary(row._mapping) for row in rows[:take]]
    return page, (page[-1]["id"] if len(rows) > take else None)


def run_summary(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "jobSlug": row["job_slug"],
        "version": row["job_version"],
        "status": row["status"],
        "startedAt": iso_or_none(row["started_at"]),
        "updatedAt": iso_or_none(row["updated_at"]),
        "completedAt": iso_or_none(row["completed_at"]),
        "tags": row["tags"],
        "priority": row["priority"],
        "isTest": row["is_test"],
    }


async def run_in_environment(store: EventStore, environment_id: UUID, run_id: UUID) -> JobRun:
    run = await store.get(run_id, JobRun)
    if run is None or run.environment_id != str(environment_id):
        raise NotFound(f"run {run_id} not found")
    return run


async def run_history(store: EventStore, run_id: UUID) -> list[dict[str, Any]]:
    """The run's own events, in order."""
    history = []
    for event in await store.load_events(run_id):
        data = event_state(event)
        data.pop("timestamp", None)
        data.pop("originator_topic", None)
        history.append(
            {
                "version": event.originator_version,
                "type": type(event).__name__,
                "time": event.timestamp.isoformat().replace("+00:00", "Z"),  # full precision: usable as `at`
                "data": data,
            }
        )
    return history


async def run_at(store: EventStore, run_id: UUID, at: datetime) -> tuple[JobRun, dict[str, Any]] | None:
    """The run, and its run-status row, rebuilt from the events it had at `at`."""
    events = [event for event in await store.load_events(run_id) if event.timestamp <= at]
    if not events:
        return None
    run: Any = None
    fold = Fold()
    for event in events:
        run = event.mutate(run)
        fold.apply(run_status_changes(event))
    (row,) = fold.table_rows(RUNS)
    return run, row
