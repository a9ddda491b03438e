"""The HTTP API (Litestar): trigger.dev v2 paths, scoped to the environment of the caller's API key."""

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Tag
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.adapters.sealing import SecretKeyError
from app.adapters.store import ConcurrencyConflict
from app.api import catalog, control, dispatchers, events, queues, runs, schedules, store
from app.api.common import (
    SECURITY_SCHEMES,
    caller_environment,
    client_error,
    database_error,
    http_error,
    internal_error,
    invalid_transition,
    secrets_unavailable,
    validation_error,
    write_conflict,
)
from app.api.observe import Observe
from app.api.requests import LimitedRequest, refuse_nul_in_url
from app.container import Container
from app.dashboard import router as dashboard_router
from app.dashboard.live import LiveFeed
from app.dashboard.overview import BrokerReader
from app.errors import ClientError
from domain.status import InvalidTransition

MAX_BODY_BYTES = 1024 * 1024
T = TypeVar("T")


def _provider(value: T) -> Callable[[], Awaitable[T]]:
    async def provide() -> T:  # async: Litestar would run a sync provider in a thread, for every request
        return value

    return provide


def _operation_id(handler: HTTPRouteHandler, *_: Any) -> str:
    first, *rest = handler.handler_name.split("_")
    return first + "".join(word.title() for word in rest)


OPENAPI = OpenAPIConfig(
    title="Jobs service",
    version="0.1.0",
    description="Runs trigger.dev v2 jobs: the v2 API paths, scoped to the environment of the caller's API key.",
    path="/schema",
    components=Components(security_schemes=SECURITY_SCHEMES),
    tags=[
        Tag(name="catalog", description="Endpoints and the jobs their indexes describe."),
        Tag(name="runs", description="Start runs and read them."),
        Tag(name="tasks", description="What the trigger.dev SDK calls while a job executes."),
        Tag(name="events", description="Send events, which start the runs of the jobs they trigger."),
        Tag(name="control", description="Cancel, continue and rerun runs."),
        Tag(name="store", description="The key-value store of an environment (io.store, client.store)."),
        Tag(name="health", description="Liveness and readiness (no API key)."),
    ],
    operation_id_creator=_operation_id,
)


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
        route_handlers=[
            *catalog.HANDLERS,
            *runs.HANDLERS,
            *control.HANDLERS,
            *events.HANDLERS,
            *store.HANDLERS,
            *dispatchers.HANDLERS,
            *schedules.HANDLERS,
            *queues.HANDLERS,
            dashboard_router(secret_key),
        ],
        dependencies={"service": service, "readiness": readiness, "env": Provide(caller_environment)},
        exception_handlers={
            ClientError: client_error,
            InvalidTransition: invalid_transition,
            ConcurrencyConflict: write_conflict,
            ValidationException: validation_error,
            HTTPException: http_error,
            DBAPIError: database_error,
            PoolTimeout: database_error,
            SecretKeyError: secrets_unavailable,
            OSError: database_error,
            Exception: internal_error,
        },
        openapi_config=OPENAPI,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=LimitedRequest,
        logging_config=None,  # the process's own (app/observability/logs.py): Litestar's would replace the root's
        before_request=refuse_nul_in_url,
    )
