"""The web dashboard: server-rendered pages (Jinja2, autoescaped) served by the API process, with its own small
CSS and JS under /static, for one environment at a time (signed in with its API key).

Adding a page: write a handler (`include_in_schema=False`) that takes `env: DashboardEnv`
(app.dashboard.web.dashboard_env: the signed-in environment, or a redirect to `/`) and answers
`render(request, "page.html", env=env, ...)` with a template that extends `base.html` (its `nav` block holds the
links); list it in PAGES below. Everything in the router gets the security headers, the HTML error pages and
`Cache-Control: no-store` (unless the handler sets its own). A form posted to it carries the hidden `csrf_token`
field and its handler calls `posted_form(request)` first."""

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from app.dashboard import jobs, overview, run_events, runs, runs_list
from app.dashboard.session import Sessions
from app.dashboard.web import EXCEPTION_HANDLERS, HERE, OPT_KEY, SecurityHeaders, Signed, dashboard_env

PAGES = [*jobs.HANDLERS, *runs.HANDLERS, *overview.HANDLERS, *runs_list.HANDLERS, *run_events.HANDLERS]


def router(secret_key: str | None) -> Router:
    """The dashboard's routes; its cookies are signed with a key derived from `secret_key` (JOBS_SECRET_KEY)."""
    static = create_static_files_router(
        "/static", [HERE / "static"], cache_control=CacheControlHeader(max_age=300), include_in_schema=False
    )
    return Router(
        "/",
        route_handlers=[*PAGES, static],
        dependencies={"env": Provide(dashboard_env)},  # in place of the API's (a bearer key)
        middleware=[SecurityHeaders],
        exception_handlers=EXCEPTION_HANDLERS,
        opt={OPT_KEY: Signed(Sessions(secret_key))},
        include_in_schema=False,
    )
