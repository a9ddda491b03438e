"""The HTTP API (Litestar): trigger.dev v2 paths, scoped to the environment of the caller's API key. Its route
handlers, error handlers and OpenAPI description; app/http_app.py serves them beside the dashboard."""

from typing import Any

import asyncpg
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Tag
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.adapters.sealing import SecretKeyError
from app.adapters.store import ConcurrencyConflict
from app.api import catalog, control, dispatchers, events, queues, runs, schedules, store
from app.api.common import (
    SECURITY_SCHEMES,
    client_error,
    database_error,
    http_error,
    internal_error,
    invalid_transition,
    secrets_unavailable,
    validation_error,
    write_conflict,
)
from app.errors import ClientError
from domain.status import InvalidTransition

MAX_BODY_BYTES = 1024 * 1024

HANDLERS = [
    *catalog.HANDLERS,
    *runs.HANDLERS,
    *control.HANDLERS,
    *events.HANDLERS,
    *store.HANDLERS,
    *dispatchers.HANDLERS,
    *schedules.HANDLERS,
    *queues.HANDLERS,
]

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ClientError: client_error,
    InvalidTransition: invalid_transition,
    ConcurrencyConflict: write_conflict,
    ValidationException: validation_error,
    HTTPException: http_error,
    DBAPIError: database_error,
    asyncpg.PostgresError: database_error,
    PoolTimeout: database_error,
    SecretKeyError: secrets_unavailable,
    OSError: database_error,
    Exception: internal_error,
}


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
