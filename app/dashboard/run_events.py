"""A run page's stream (`GET /runs/{id}/events`): the run's live region, rendered again each time the run
changes (the process's one live feed says when), until the run reaches a final status. The pages open on one
run share each of its renders: a hundred watchers of a run cost one render per change, not a hundred."""

import asyncio
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
                html = await _shared_render(service, env, run_id, batch.look)
                yield ServerSentEventMessage(data=html, event="run")
                if is_terminal(status):
                    break
            else:
                return  # dropped, or the process stops: the browser reconnects
    yield ServerSentEventMessage(data="", event="end")


# The region of a run after a look, rendered once for all its open pages (the same HTML: no CSRF token in it).
_renders: dict[tuple[UUID, int], asyncio.Task[str]] = {}
KEEP_RENDER_SECONDS = 5.0


async def _shared_render(service: JobsService, env: EnvironmentInfo, run_id: UUID, look: int) -> str:
    key = (run_id, look)
    render = _renders.get(key)
    if render is None:
        render = asyncio.create_task(render_run_fragment(service, env, run_id))
        _renders[key] = render
        asyncio.get_running_loop().call_later(KEEP_RENDER_SECONDS, _renders.pop, key, None)
    return await asyncio.shield(render)


HANDLERS = [run_events]
