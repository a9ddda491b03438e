"""Run control and history: cancel, continue, rerun, run lists, a run's own events."""

from typing import Any
from uuid import UUID

from litestar import get, post
from litestar.params import FromPath, FromQuery

from app.adapters.reads import MAX_TAKE, RunFilter
from app.api.common import Env, Service, parse_run_id
from app.errors import ClientError
from domain.status import RunStatus
from domain.times import iso_or_none


def _summary(run: Any) -> dict[str, Any]:
    return {"id": str(run.id), "status": run.status.value}


@post("/api/v1/runs/{run_id:str}/cancel", status_code=200)
async def cancel_run(service: Service, env: Env, run_id: FromPath[str]) -> dict[str, Any]:
    return _summary(await service.control.cancel(env, parse_run_id(run_id)))


@post("/api/v1/jobs/{job_slug:str}/cancel-runs", status_code=200)
async def cancel_job_runs(service: Service, env: Env, job_slug: FromPath[str]) -> dict[str, list[str]]:
    canceled, failed = await service.control.cancel_job_runs(env, job_slug)
    return {"cancelledRunIds": canceled, "failedToCancelRunIds": failed}


@post("/api/v1/runs/{run_id:str}/continue", status_code=200)
async def continue_run(service: Service, env: Env, run_id: FromPath[str]) -> dict[str, Any]:
    return _summary(await service.control.continue_run(env, parse_run_id(run_id)))


@post("/api/v1/runs/{run_id:str}/rerun", status_code=200)
async def rerun(service: Service, env: Env, run_id: FromPath[str]) -> dict[str, str]:
    return {"id": str(await service.runs.rerun(env, parse_run_id(run_id)))}


def _page(take: int, cursor: str | None) -> tuple[int, UUID | None]:
    if not 1 <= take <= MAX_TAKE:
        raise ClientError(f"`take` must be 1 to {MAX_TAKE}")
    if cursor is None:
        return take, None
    try:
        return take, UUID(cursor)
    except ValueError:
        raise ClientError("`cursor` is not a run id") from None


def _status(status: str | None) -> str | None:
    if status is not None and status not in RunStatus.__members__:
        raise ClientError(f"`status` must be one of {', '.join(RunStatus.__members__)}")
    return status


@get("/api/v1/jobs/{job_slug:str}/runs")
async def job_runs(
    service: Service,
    env: Env,
    job_slug: FromPath[str],
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return await _list_runs(service, env, RunFilter(job_slug, _status(status), tag), take, cursor)


@get("/api/v1/runs")
async def runs(
    service: Service,
    env: Env,
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    job: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return await _list_runs(service, env, RunFilter(job, _status(status), tag), take, cursor)


async def _list_runs(service: Any, env: Any, where: RunFilter, take: int, cursor: str | None) -> dict[str, Any]:
    size, after = _page(take, cursor)
    rows, next_cursor = await service.runs.page(env, where, size, after)
    return {"runs": [run_summary(row) for row in rows], "nextCursor": next_cursor}


def run_summary(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "jobSlug": row.job_slug,
        "version": row.job_version,
        "status": row.status,
        "startedAt": iso_or_none(row.started_at),
        "updatedAt": iso_or_none(row.updated_at),
        "completedAt": iso_or_none(row.completed_at),
        "tags": row.tags,
        "priority": row.priority,
        "isTest": row.is_test,
    }


@get("/api/v1/runs/{run_id:str}/events")
async def run_events(service: Service, env: Env, run_id: FromPath[str]) -> dict[str, Any]:
    return {"events": await service.runs.history(env, parse_run_id(run_id))}


HANDLERS = [cancel_run, cancel_job_runs, continue_run, rerun, job_runs, runs, run_events]
