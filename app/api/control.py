"""Run control and history: cancel, continue, rerun, run lists, a run's own events."""

from typing import Any
from uuid import UUID

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from app import queries
from app.api.common import AnyRequest, container_of, parse_run_id
from app.environments import EnvironmentInfo
from app.errors import ClientError
from app.run_control import RunControl
from domain.status import RunStatus


def _control(request: AnyRequest) -> RunControl:
    container = container_of(request)
    return RunControl(container.store, container.settings.execution_topic)


def _summary(run: Any) -> dict[str, Any]:
    return {"id": str(run.id), "status": run.status.value}


@post("/api/v1/runs/{run_id:str}/cancel", status_code=200)
async def cancel_run(
    request: AnyRequest, run_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    return _summary(await _control(request).cancel(env, parse_run_id(run_id)))


@post("/api/v1/jobs/{job_slug:str}/cancel-runs", status_code=200)
async def cancel_job_runs(
    request: AnyRequest, job_slug: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, list[str]]:
    canceled, failed = await _control(request).cancel_job_runs(env, job_slug)
    return {"cancelledRunIds": canceled, "failedToCancelRunIds": failed}


@post("/api/v1/runs/{run_id:str}/continue", status_code=200)
async def continue_run(
    request: AnyRequest, run_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    return _summary(await _control(request).continue_run(env, parse_run_id(run_id)))


@post("/api/v1/runs/{run_id:str}/rerun", status_code=200)
async def rerun(request: AnyRequest, run_id: FromPath[str], env: NamedDependency[EnvironmentInfo]) -> dict[str, str]:
    return {"id": str(await _control(request).rerun(env, parse_run_id(run_id)))}


def _page(take: int, cursor: str | None) -> tuple[int, UUID | None]:
    if not 1 <= take <= queries.MAX_TAKE:
        raise ClientError(f"`take` must be 1 to {queries.MAX_TAKE}")
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
    request: AnyRequest,
    job_slug: FromPath[str],
    env: NamedDependency[EnvironmentInfo],
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return await list_runs(request, env, queries.RunFilter(job_slug, _status(status), tag), take, cursor)


@get("/api/v1/runs")
async def runs(
    request: AnyRequest,
    env: NamedDependency[EnvironmentInfo],
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    job: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return await list_runs(request, env, queries.RunFilter(job, _status(status), tag), take, cursor)


async def list_runs(
    request: AnyRequest, env: EnvironmentInfo, where: queries.RunFilter, take: int, cursor: str | None
) -> dict[str, Any]:
    size, after = _page(take, cursor)
    page, next_cursor = await queries.list_runs(container_of(request).engine, env.id, where, size, after)
    return {"runs": page, "nextCursor": next_cursor}


@get("/api/v1/runs/{run_id:str}/events")
async def run_events(
    request: AnyRequest, run_id: FromPath[str], env: NamedDependency[EnvironmentInfo]
) -> dict[str, Any]:
    store = container_of(request).store
    run = await queries.run_in_environment(store, env.id, parse_run_id(run_id))
    return {"events": await queries.run_history(store, run.id)}


HANDLERS = [cancel_run, cancel_job_runs, continue_run, rerun, job_runs, runs, run_events]
