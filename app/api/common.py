"""What every HTTP handler shares: the container, the caller's environment, views and error answers."""

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException

from app.container import Container
from app.environments import EnvironmentInfo
from app.errors import ClientError, NotFound
from domain.status import InvalidTransition

log = logging.getLogger(__name__)

AnyRequest = Request[Any, Any, State]


def container_of(request: AnyRequest) -> Container:
    container: Container = request.app.state.container
    return container


async def caller_environment(request: AnyRequest) -> EnvironmentInfo:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(status_code=401, detail="missing API key: send `Authorization: Bearer <key>`")
    env = await container_of(request).authenticator.authenticate(key.strip())
    if env is None:
        raise HTTPException(status_code=401, detail="invalid API key")
    return env


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_run_id(run_id: str) -> UUID:
    try:
        return UUID(run_id)
    except ValueError:
        raise NotFound(f"run {run_id!r} not found") from None


def check_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"`{field}` must be an http(s) URL with a host")
    return url


def error_response(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    # `error` too: the trigger.dev SDK reads that key from a 4xx answer.
    return Response({"message": message, "error": message, **extra}, status_code=status)


def client_error(_: AnyRequest, error: ClientError) -> Response[dict[str, Any]]:
    return error_response(error.status_code, error.message, **error.extra)


def invalid_transition(_: AnyRequest, error: InvalidTransition) -> Response[dict[str, Any]]:
    return error_response(409, f"the run is {error.current}: it cannot go to {error.target}")


def validation_error(_: AnyRequest, error: ValidationException) -> Response[dict[str, Any]]:
    return error_response(400, error.detail or "invalid request", errors=error.extra or [])


def http_error(_: AnyRequest, error: HTTPException) -> Response[dict[str, Any]]:
    return error_response(error.status_code, error.detail)


def database_unavailable(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.warning("database unavailable: %s", error)
    return error_response(503, "the database is unavailable; try again shortly")


def internal_error(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal error")
