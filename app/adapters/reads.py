"""The read side: every query of the read models (and of the tables beside them), in one place.

The service answers from here what it does not fold from an aggregate's own events."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, and_, select, text, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import cast

from app.adapters.db import reading
from domain.status import TERMINAL, RunStatus
from projections import tables

MAX_TAKE = 50
_OPEN_STATUSES = [status.value for status in RunStatus if status not in TERMINAL]
RUNS = tables.run_status

_RUN = text("SELECT * FROM run_status WHERE id = :id AND environment_id = :env")
_RUNS_OF_EVENT = text(
    "SELECT id, status, started_at, completed_at FROM run_status "
    "WHERE environment_id = :env AND event_record_id = :record ORDER BY created_at"
)
# The open statuses named (not "not terminal"), so that run_status_status_idx finds them among a long history.
_OPEN_RUNS_OF_JOB = text(
    "SELECT id FROM run_status WHERE environment_id = :env AND status = ANY(:open) AND job_slug = :job"
)
_EXPIRED_LEASES = text(
    "SELECT id FROM run_status WHERE status = 'EXECUTING' AND lease_until < now() ORDER BY lease_until LIMIT :n"
)
# Due to execute, with no message for it anywhere: no outbox row, published or not.
_ORPHANED = text(
    "SELECT id FROM run_status r WHERE status IN ('QUEUED', 'WAITING_TO_EXECUTE', 'WAITING_TO_CONTINUE') "
    "AND next_due_at < now() - make_interval(secs => :grace) "
    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.id::text) ORDER BY next_due_at LIMIT :n"
)
# A deleted job (deleted_at set) is in none of these: its versions start no run; its runs stay readable.
_JOBS = text(
    "SELECT slug, title, latest_version, event_name, endpoint_id, created_at, updated_at FROM jobs "
    "WHERE environment_id = :env AND deleted_at IS NULL ORDER BY slug"
)
_JOB = text(
    "SELECT slug, title, latest_version, event_name, endpoint_id, created_at, updated_at FROM jobs "
    "WHERE environment_id = :env AND slug = :slug AND deleted_at IS NULL"
)
_VERSIONS = text(
    "SELECT v.version, v.endpoint_id, v.metadata, v.created_at, v.updated_at FROM job_versions v "
    "JOIN jobs j ON j.environment_id = v.environment_id AND j.slug = v.job_slug AND j.deleted_at IS NULL "
    "WHERE v.environment_id = :env AND v.job_slug = :slug ORDER BY v.created_at DESC, v.version DESC"
)
_JOB_VERSION = text(
    "SELECT v.job_slug, v.version, v.endpoint_id, v.metadata FROM jobs j JOIN job_versions v "
    "ON v.environment_id = j.environment_id AND v.job_slug = j.slug "
    "WHERE j.environment_id = :env AND j.slug = :slug AND j.deleted_at IS NULL "
    "AND v.version = COALESCE(:version, j.latest_version)"
)
_LATEST_VERSIONS = text(
    "SELECT v.job_slug, v.version, v.endpoint_id, v.metadata FROM jobs j JOIN job_versions v "
    "ON v.environment_id = j.environment_id AND v.job_slug = j.slug AND v.version = j.latest_version "
    "WHERE j.environment_id = :env AND j.deleted_at IS NULL"
)
_SCHEDULE_COLUMNS = (
    "id, key, owner, dynamic, schedule, metadata, active, next_tick_at, last_tick_at, created_at, updated_at"
)
_SCHEDULES = text(f"SELECT {_SCHEDULE_COLUMNS} FROM schedules WHERE environment_id = :env ORDER BY key")
# Overdue, with no row for their tick (it was dead-lettered, say): nothing would ever fire them again.
_STALLED_SCHEDULES = text(
    "SELECT id FROM schedules s WHERE active AND next_tick_at < now() - make_interval(secs => :grace) "
    "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = s.id::text) ORDER BY next_tick_at LIMIT :n"
)
_STATIC_SCHEDULES = text("SELECT id FROM schedules WHERE endpoint_id = :endpoint AND active AND NOT dynamic")
_QUEUE_COUNTS = (
    "SELECT q.name, q.concurrency_limit, q.created_at, q.updated_at, "
    "count(*) FILTER (WHERE r.status = 'EXECUTING') AS running, "
    "count(*) FILTER (WHERE r.status IN ('QUEUED', 'WAITING_TO_EXECUTE')) AS queued "
    "FROM queues q LEFT JOIN run_status r ON r.environment_id = q.environment_id "
    "AND r.concurrency_key = 'group:' || q.name AND r.status IN ('EXECUTING', 'QUEUED', 'WAITING_TO_EXECUTE') "
    "WHERE q.environment_id = :env {where} GROUP BY q.id ORDER BY q.name"
)
_QUEUES = text(_QUEUE_COUNTS.format(where=""))
_QUEUE = text(_QUEUE_COUNTS.format(where="AND q.name = :name"))
# The secret is joined from the outside: an environment whose key was revoked still finds its endpoint.
_ENDPOINT_TARGET = text(
    "SELECT ep.url, e.slug, e.type, s.sealed_api_key, v.metadata FROM endpoints ep "
    "JOIN environments e ON e.id = ep.environment_id "
    "LEFT JOIN environment_secrets s ON s.environment_id = e.id "
    "LEFT JOIN job_versions v ON v.environment_id = e.id AND v.job_slug = :job AND v.version = :version "
    "WHERE ep.id = :endpoint_id"
)
_NOTIFICATION_CONTEXT = text(
    "SELECT e.slug, e.type, s.sealed_api_key, ep.url, r.completed_at FROM environments e "
    "JOIN environment_secrets s ON s.environment_id = e.id "
    "JOIN endpoints ep ON ep.id = :endpoint_id "
    "JOIN run_status r ON r.id = :run_id WHERE e.id = :env"
)
_WAITING_DISPATCHERS = text(
    "SELECT id FROM event_dispatchers WHERE environment_id = :env AND matched_at IS NULL "
    "AND expires_at > now() AND names @> jsonb_build_array(CAST(:name AS text)) ORDER BY created_at, id"
)
_ENVIRONMENT_BY_HASH = text("SELECT id, slug, type FROM environments WHERE api_key_hash = :hash")
_ENVIRONMENT_ID = text("SELECT id FROM environments WHERE slug = :slug")
_SEALED_KEY = text("SELECT sealed_api_key FROM environment_secrets WHERE environment_id = :id")
_PING = text("SELECT 1")
_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


@dataclass(frozen=True, slots=True)
class RunFilter:
    job: str | None = None
    status: str | None = None
    tag: str | None = None


def runs_page(environment_id: UUID, where: RunFilter, limit: int, after: tuple[datetime, UUID] | None) -> Select[Any]:
    """The runs list's query: the environment's runs matching `where`, newest first, after (created_at, id)."""
    conditions = [RUNS.c.environment_id == environment_id]
    if where.job is not None:
        conditions.append(RUNS.c.job_slug == where.job)
    if where.status is not None:
        conditions.append(RUNS.c.status == where.status)
    if where.tag is not None:
        conditions.append(RUNS.c.tags.contains(cast([where.tag], JSONB)))
    if after is not None:
        conditions.append(tuple_(RUNS.c.created_at, RUNS.c.id) < tuple_(*after))
    query = select(RUNS).where(and_(*conditions)).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
    return query.limit(limit)


class ReadModels:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._reads = reading(engine)

    async def _all(self, query: Any, **params: Any) -> Sequence[Row[Any]]:
        async with self._reads.connect() as conn:
            return (await conn.execute(query, params)).all()

    async def _first(self, query: Any, **params: Any) -> Row[Any] | None:
        async with self._reads.connect() as conn:
            return (await conn.execute(query, params)).first()

    async def ping(self) -> None:
        await self._first(_PING)

    # -- runs ---------------------------------------------------------------------------------------

    async def run(self, environment_id: UUID, run_id: UUID) -> Row[Any] | None:
        return await self._first(_RUN, id=run_id, env=environment_id)

    async def runs(
        self, environment_id: UUID, where: RunFilter, take: int, cursor: UUID | None
    ) -> tuple[Sequence[Row[Any]], bool]:
        """A page of runs, newest first, after the run `cursor` names; and whether more follow."""
        async with self._reads.connect() as conn:
            after = None
            if cursor is not None:
                created = (await conn.execute(select(RUNS.c.created_at).where(RUNS.c.id == cursor))).scalar()
                after = None if created is None else (created, cursor)
            rows = (await conn.execute(runs_page(environment_id, where, take + 1, after))).all()
        return rows[:take], len(rows) > take

    async def runs_of_event(self, environment_id: UUID, record_id: UUID) -> Sequence[Row[Any]]:
        return await self._all(_RUNS_OF_EVENT, env=environment_id, record=record_id)

    async def open_runs_of_job(self, environment_id: UUID, job_slug: str) -> list[UUID]:
        rows = await self._all(_OPEN_RUNS_OF_JOB, env=environment_id, job=job_slug, open=_OPEN_STATUSES)
        return [row.id for row in rows]

    async def rescue_candidates(self, lock: int, grace_seconds: float, limit: int) -> tuple[list[UUID], list[UUID]]:
        """Runs whose attempt's lease expired, and runs due with no message at all for `grace_seconds`; none
        when another process holds the advisory `lock` (one rescuer looks at a time)."""
        async with self.engine.begin() as conn:
            if not (await conn.execute(_TRY_LOCK, {"key": lock})).scalar():
                return [], []
            expired = (await conn.execute(_EXPIRED_LEASES, {"n": limit})).scalars().all()
            orphaned = (await conn.execute(_ORPHANED, {"grace": grace_seconds, "n": limit})).scalars().all()
        return list(expired), list(orphaned)

    # -- catalog ------------------------------------------------------------------------------------

    async def jobs(self, environment_id: UUID) -> Sequence[Row[Any]]:
        return await self._all(_JOBS, env=environment_id)

    async def job(self, environment_id: UUID, slug: str) -> Row[Any] | None:
        return await self._first(_JOB, env=environment_id, slug=slug)

    async def job_versions(self, environment_id: UUID, slug: str) -> Sequence[Row[Any]]:
        return await self._all(_VERSIONS, env=environment_id, slug=slug)

    async def job_version(self, environment_id: UUID, slug: str, version: str | None) -> Row[Any] | None:
        """The version named, or the job's latest one."""
        return await self._first(_JOB_VERSION, env=environment_id, slug=slug, version=version)

    async def latest_versions(self, environment_id: UUID) -> Sequence[Row[Any]]:
        return await self._all(_LATEST_VERSIONS, env=environment_id)

    # -- schedules and queues -------------------------------------------------------------------------

    async def schedules(self, environment_id: UUID) -> Sequence[Row[Any]]:
        return await self._all(_SCHEDULES, env=environment_id)

    async def static_schedules(self, endpoint_id: UUID) -> list[UUID]:
        """The running schedules of the endpoint's scheduled jobs."""
        return [row.id for row in await self._all(_STATIC_SCHEDULES, endpoint=endpoint_id)]

    async def stalled_schedules(self, grace_seconds: float, limit: int) -> list[UUID]:
        rows = await self._all(_STALLED_SCHEDULES, grace=grace_seconds, n=limit)
        return [row.id for row in rows]

    async def queues(self, environment_id: UUID) -> Sequence[Row[Any]]:
        """Each queue with its limit and how many of its runs execute (running) or wait to (queued)."""
        return await self._all(_QUEUES, env=environment_id)

    async def queue(self, environment_id: UUID, name: str) -> Row[Any] | None:
        return await self._first(_QUEUE, env=environment_id, name=name)

    async def endpoint_target(self, endpoint_id: UUID, job_slug: str, version: str) -> Row[Any] | None:
        return await self._first(_ENDPOINT_TARGET, endpoint_id=endpoint_id, job=job_slug, version=version)

    async def notification_context(self, environment_id: UUID, endpoint_id: UUID, run_id: UUID) -> Row[Any] | None:
        return await self._first(_NOTIFICATION_CONTEXT, env=environment_id, endpoint_id=endpoint_id, run_id=run_id)

    # -- event dispatchers --------------------------------------------------------------------------

    async def waiting_dispatchers(self, environment_id: UUID, event_name: str) -> list[UUID]:
        """The dispatchers of io.waitForEvent that wait for an event of this name, oldest first."""
        rows = await self._all(_WAITING_DISPATCHERS, env=environment_id, name=event_name)
        return [row.id for row in rows]

    # -- environments -------------------------------------------------------------------------------

    async def environment_by_key_hash(self, digest: str) -> Row[Any] | None:
        return await self._first(_ENVIRONMENT_BY_HASH, hash=digest)

    async def environment_id(self, slug: str) -> UUID | None:
        row = await self._first(_ENVIRONMENT_ID, slug=slug)
        return None if row is None else row.id

    async def sealed_key(self, environment_id: UUID) -> str | None:
        row = await self._first(_SEALED_KEY, id=environment_id)
        return None if row is None else str(row.sealed_api_key)
