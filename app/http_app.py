"""The HTTP application the api role serves: the API and the dashboard in one Litestar app, wrapped in what
observes every request (app/api/observe.py)."""

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from litestar import Litestar
from litestar.di import Provide

from app.api import EXCEPTION_HANDLERS, HANDLERS, MAX_BODY_BYTES, OPENAPI
from app.api.common import caller_environment
from app.api.observe import Observe
from app.api.requests import LimitedRequest, refuse_nul_in_url
from app.container import Container
from app.dashboard import router as dashboard_router
from app.dashboard.live import LiveFeed
from app.dashboard.overview import BrokerReader

T = TypeVar("T")


def _provider(value: T) -> Callable[[], Awaitable[T]]:
    async def provide() -> T:  # async: Litestar would run a sync provider in a thread, for every request
        return value

    return provide


def create_app(container: Container) -> Litestar:
    app = _app(
        Provide(_provider(container.service)),
        Provide(_provider(container.readiness)),
        container.settings.secret_key,
    )
    app.asgi_handler = Observe(app.asgi_handler)  # around the router and the error handlers: sees every answer
    app.state.dashboard_live = LiveFeed(container.engine)  # idle until a page listens; closed by the caller
    app.state.dashboard_broker = BrokerReader(container.settings)
    return app


def openapi_document() -> str:
    """The document the API serves at /schema/openapi.json, as docs/openapi.json holds it: pretty-printed, keys
    sorted. Built without a database: no handler runs."""
    document = _app(Provide(_provider(None)), Provide(_provider(None)), None).openapi_schema.to_schema()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _app(service: Provide, readiness: Provide, secret_key: str | None) -> Litestar:
    """The API with the dashboard (its pages are left out of the OpenAPI document), whose cookies are signed
    with a key derived from `secret_key`."""
    return Litestar(
        route_handlers=[*HANDLERS, dashboard_router(secret_key)],
        dependencies={"service": service, "readiness": readiness, "env": Provide(caller_environment)},
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OPENAPI,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=LimitedRequest,
        logging_config=None,  # the process's own (app/observability/logs.py): Litestar's would replace the root's
        before_request=refuse_nul_in_url,
    )
