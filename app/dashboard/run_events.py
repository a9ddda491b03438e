"""A run page's stream (`GET /runs/{id}/events`): the run's live region, rendered again each time the run
changes (the process's one live feed says when), until the run reaches a final status."""

from collections.abc import AsyncIterator
from uuid import UUID

from litestar import get
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.api.common import AnyRequest, Service, parse_run_id
from app.dashboard.runs_list import PING_SECONDS, live_feed
from app.dashboard.views import render_run_fragment
from app.dashboard.web import DashboardEnv
from app.service import JobsService
from app.service.environments import EnvironmentInfo
from domain.status import RunStatus, is_terminal


@get("/runs/{run_id:str}/events", include_in_schema=False)
async def run_events(
    request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]
) -> ServerSentEvent:
    """`run` events carry the region's HTML; `end` says the run is over (the page stops listening)."""
    key = parse_run_id(run_id)
    await service.runs.get(env, key)  # another environment's run, or none: a 404 before the stream starts
    return ServerSentEvent(_events(request, service, env, key), retry_duration=2000)


async def _events(
    request: AnyRequest, service: JobsService, env: EnvironmentInfo, run_id: UUID
) -> AsyncIterator[ServerSentEventMessage]:
    async with live_feed(request).subscribe(env.id, run_id) as subscription:
        # Listening first, then rendering: a change between the page's answer and now is not missed.
        yield ServerSentEventMessage(data=await render_run_fragment(service, env, run_id), event="run")
        status = (await service.runs.get(env, run_id)).status
        if not is_terminal(status):
            async for batch in subscription.changes(PING_SECONDS):
                if not batch:
                    yield ServerSentEventMessage(comment="ping")
                    continue
                status = RunStatus(batch[-1].status)
                yield ServerSentEventMessage(data=await render_run_fragment(service, env, run_id), event="run")
                if is_terminal(status):
                    break
            else:
                return  # dropped, or the process stops: the browser reconnects
    yield ServerSentEventMessage(data="", event="end")


HANDLERS = [run_events]
