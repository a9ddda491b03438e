"""The Runs page: every run of the environment, newest first, filtered by status, tag and job, paged by the
API's cursor (a run id); and its stream, which sends each changed run's row as it changes (new runs too)."""

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from litestar import Response, get
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import Row

from app.adapters.reads import MAX_TAKE, RunFilter
from app.api.common import AnyRequest, Service
from app.dashboard.live import LiveFeed
from app.dashboard.web import DashboardEnv, render, render_fragment
from app.errors import ClientError
from domain.status import RunStatus

PAGE_SIZE = 25
MAX_TAG = 200
PING_SECONDS = 15.0


def live_feed(request: AnyRequest) -> LiveFeed:
    feed: LiveFeed = request.app.state.dashboard_live
    return feed


def run_filter(status: str | None, tag: str | None, job: str | None) -> RunFilter:
    """The filters of the page's form: an empty field is no filter; a bad one is a 400 page."""
    status, tag, job = (value.strip() if value and value.strip() else None for value in (status, tag, job))
    if status is not None and status not in RunStatus.__members__:
        raise ClientError(f"Status must be one of {', '.join(RunStatus.__members__)}.")
    if tag is not None and len(tag) > MAX_TAG:
        raise ClientError(f"A tag has at most {MAX_TAG} characters.")
    if job is not None and len(job) > MAX_TAG:
        raise ClientError(f"A job id has at most {MAX_TAG} characters.")
    return RunFilter(job=job, status=status, tag=tag)


def parse_cursor(cursor: str | None) -> UUID | None:
    if not cursor:
        return None
    try:
        return UUID(cursor)
    except ValueError:
        raise ClientError("That page link is broken: its cursor is not a run id.") from None


def matches(row: Row[Any], where: RunFilter) -> bool:
    """Whether a run belongs on a list with these filters, its status aside."""
    return (where.job is None or row.job_slug == where.job) and (where.tag is None or where.tag in (row.tags or []))


@get("/runs", include_in_schema=False)
async def runs_page(
    request: AnyRequest,
    service: Service,
    env: DashboardEnv,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    job: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
) -> Response[str]:
    where = run_filter(status, tag, job)
    after = parse_cursor(cursor)
    rows, next_cursor = await service.runs.page(env, where, min(PAGE_SIZE, MAX_TAKE), after)
    jobs = [each.slug for each in await service.catalog.jobs(env)]
    filters = {"status": where.status or "", "tag": where.tag or "", "job": where.job or ""}
    return render(
        request,
        "runs.html",
        env=env,
        runs=rows,
        filters=filters,
        statuses=list(RunStatus.__members__),
        jobs=jobs,
        next_cursor=next_cursor,
        first_page=after is None,
    )


@get("/runs/stream", include_in_schema=False)
async def runs_stream(
    request: AnyRequest,
    env: DashboardEnv,
    status: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    job: FromQuery[str | None] = None,
) -> ServerSentEvent:
    """`ready` once listening; then `run` events: a changed run's row (the page replaces it, or puts it on top
    when new); `remove`: a run whose status left the filter."""
    where = run_filter(status, tag, job)
    return ServerSentEvent(_row_events(live_feed(request), env.id, where), retry_duration=2000)


async def _row_events(feed: LiveFeed, environment_id: UUID, where: RunFilter) -> AsyncIterator[ServerSentEventMessage]:
    async with feed.subscribe(environment_id) as subscription:
        yield ServerSentEventMessage(data="", event="ready")  # listening: any change from now on is sent
        async for batch in subscription.changes(PING_SECONDS):
            if not batch:
                yield ServerSentEventMessage(comment="ping")
                continue
            for row in sorted(batch, key=lambda r: (r.created_at, str(r.id))):
                if not matches(row, where):
                    continue
                if where.status is not None and row.status != where.status:
                    yield ServerSentEventMessage(data=str(row.id), event="remove")
                else:
                    yield ServerSentEventMessage(data=render_fragment("_run_row.html", run=row), event="run")


HANDLERS = [runs_page, runs_stream]
