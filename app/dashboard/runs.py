"""A run's page, its live region alone (`/runs/{id}/fragment`), and its controls: cancel, rerun, continue (the
same service calls as the API's control routes)."""

from typing import Any

from litestar import Response, get, post
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Redirect

from app.api.common import AnyRequest, Service, parse_run_id
from app.dashboard.views import LIVE_REGION_ID, render_run_fragment, run_view
from app.dashboard.web import DashboardEnv, csrf_token_of, posted_form, render


@get("/runs/{run_id:str}", include_in_schema=False)
async def run_page(request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]) -> Response[str]:
    view = await run_view(service, env, parse_run_id(run_id))
    return render(request, "run.html", env=env, view=view, live_region_id=LIVE_REGION_ID)


@get("/runs/{run_id:str}/fragment", include_in_schema=False)
async def run_fragment(
    request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]
) -> Response[str]:
    html = await render_run_fragment(service, env, parse_run_id(run_id), csrf_token_of(request))
    return Response(html, media_type=MediaType.HTML)


@post("/runs/{run_id:str}/cancel", include_in_schema=False, status_code=303)
async def cancel_run(request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]) -> Response[Any]:
    await posted_form(request)
    key = parse_run_id(run_id)
    await service.control.cancel(env, key)
    return Redirect(f"/runs/{key}", status_code=303)


@post("/runs/{run_id:str}/continue", include_in_schema=False, status_code=303)
async def continue_run(
    request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]
) -> Response[Any]:
    await posted_form(request)
    key = parse_run_id(run_id)
    await service.control.continue_run(env, key)
    return Redirect(f"/runs/{key}", status_code=303)


@post("/runs/{run_id:str}/rerun", include_in_schema=False, status_code=303)
async def rerun(request: AnyRequest, service: Service, env: DashboardEnv, run_id: FromPath[str]) -> Response[Any]:
    await posted_form(request)
    new_run = await service.runs.rerun(env, parse_run_id(run_id))
    return Redirect(f"/runs/{new_run}", status_code=303)


HANDLERS = [run_page, run_fragment, cancel_run, continue_run, rerun]
