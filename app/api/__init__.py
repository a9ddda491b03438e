"""The HTTP API (Litestar): trigger.dev v2 paths, scoped to the environment of the caller's API key."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.adapters.sealing import SecretKeyError
from app.api import catalog, control, events, runs
from app.api.common import (
    caller_environment,
    client_error,
    database_error,
    http_error,
    internal_error,
    invalid_transition,
    secrets_unavailable,
    validation_error,
)
from app.api.requests import LimitedRequest, refuse_nul_in_url
from app.container import Container
from app.errors import ClientError
from domain.status import InvalidTransition

MAX_BODY_BYTES = 1024 * 1024
T = TypeVar("T")


def _provider(value: T) -> Callable[[], Awaitable[T]]:
    async def provide() -> T:  # async: Litestar would run a sync provider in a thread, for every request
        return value

    return provide


def create_app(container: Container) -> Litestar:
    return Litestar(
        route_handlers=[*catalog.HANDLERS, *runs.HANDLERS, *control.HANDLERS, *events.HANDLERS],
        dependencies={
            "service": Provide(_provider(container.service)),
            "readiness": Provide(_provider(container.readiness)),
            "env": Provide(caller_environment),
        },
        exception_handlers={
            ClientError: client_error,
            InvalidTransition: invalid_transition,
            ValidationException: validation_error,
            HTTPException: http_error,
            DBAPIError: database_error,
            PoolTimeout: database_error,
            SecretKeyError: secrets_unavailable,
            OSError: database_error,
            Exception: internal_error,
        },
        openapi_config=OpenAPIConfig(title="Jobs service", version="0.1.0", path="/schema"),
        request_max_body_size=MAX_BODY_BYTES,
        request_class=LimitedRequest,
        before_request=refuse_nul_in_url,
    )
