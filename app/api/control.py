"""Run control and history: cancel, continue, rerun, run lists, a run's own events."""

from uuid import UUID

from litestar import get, post
from litestar.params import FromPath, FromQuery

from app.adapters.reads import MAX_TAKE, RunFilter
from app.api.answers import CanceledRuns, CreatedRun, Run, RunHistory, RunPage, RunState
from app.api.common import BEARER, Env, Service, errors, parse_run_id
from app.errors import ClientError
from domain.status import RunStatus


@post(
    "/api/v1/runs/{run_id:str}/cancel",
    status_code=200,
    tags=["control"],
    summary="Cancel a run",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def cancel_run(service: Service, env: Env, run_id: FromPath[str]) -> Run:
    """The run as it is once canceled (GetRunSchema: the SDK's client.cancelRun parses it); a run that had
    ended already stays as it was."""
    key = parse_run_id(run_id)
    await service.control.cancel(env, key)
    run, row = await service.runs.status(env, key)
    return Run.of(row._mapping, run)


@post(
    "/api/v1/jobs/{job_slug:str}/cancel-runs",
    status_code=200,
    tags=["control"],
    summary="Cancel every unfinished run of a job",
    security=BEARER,
    responses=errors(401),
)
async def cancel_job_runs(service: Service, env: Env, job_slug: FromPath[str]) -> CanceledRuns:
    canceled, failed = await service.control.cancel_job_runs(env, job_slug)
    return CanceledRuns(canceled, failed)


@post(
    "/api/v1/runs/{run_id:str}/continue",
    status_code=200,
    tags=["control"],
    summary="Continue a run that stopped (a failure, a revoked key...) from where it was",
    security=BEARER,
    responses=errors(401, 404, 409),
)
async def continue_run(service: Service, env: Env, run_id: FromPath[str]) -> RunState:
    run = await service.control.continue_run(env, parse_run_id(run_id))
    return RunState(str(run.id), run.status)


@post(
    "/api/v1/runs/{run_id:str}/rerun",
    status_code=200,
    tags=["control"],
    summary="Run a run's job again with the same event, as a new run",
    security=BEARER,
    responses=errors(401, 404),
)
async def rerun(service: Service, env: Env, run_id: FromPath[str]) -> CreatedRun:
    return CreatedRun(str(await service.runs.rerun(env, parse_run_id(run_id))))


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


@get(
    "/api/v1/jobs/{job_slug:str}/runs",
    tags=["runs"],
    summary="The runs of a job, newest first, a page at a time",
    security=BEARER,
    responses=errors(401),
)
async def list_job_runs(
    service: Service,
    env: Env,
    job_slug: FromPath[str],
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
) -> RunPage:
    return await _page_of_runs(service, env, RunFilter(job_slug, _status(status), tag), take, cursor)


@get(
    "/api/v1/runs",
    tags=["runs"],
    summary="The runs of the environment, newest first, a page at a time",
    security=BEARER,
    responses=errors(401),
)
async def list_runs(
    service: Service,
    env: Env,
    take: FromQuery[int] = 20,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    job: FromQuery[str | None] = None,
) -> RunPage:
    return await _page_of_runs(service, env, RunFilter(job, _status(status), tag), take, cursor)


async def _page_of_runs(service: Service, env: Env, where: RunFilter, take: int, cursor: str | None) -> RunPage:
    size, after = _page(take, cursor)
    rows, next_cursor = await service.runs.page(env, where, size, after)
    return RunPage.of(rows, next_cursor)


@get(
    "/api/v1/runs/{run_id:str}/events",
    tags=["runs"],
    summary="A run's own events, in order",
    security=BEARER,
    responses=errors(401, 404),
)
async def run_events(service: Service, env: Env, run_id: FromPath[str]) -> RunHistory:
    return RunHistory.of(await service.runs.history(env, parse_run_id(run_id)))


HANDLERS = [cancel_run, cancel_job_runs, continue_run, rerun, list_job_runs, list_runs, run_events]
