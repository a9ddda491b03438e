"""What every HTTP handler shares: the container, the caller's environment, views and error answers."""

import logging
from typing import Any
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


def parse_run_id(run_id: str) -> UUID:
    try:
        return UUID(run_id)
    except ValueError:
        raise NotFound(f"run {run_id!r} not found") from None


MAX_JSON_DEPTH = 32
MAX_JSON_STRING = 100_000


def check_json(value: Any, field: str) -> Any:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding a string longer than MAX_JSON_STRING."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ClientError(f"`{field}` is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str) and len(item) > MAX_JSON_STRING:
            raise ClientError(f"`{field}` holds a string longer than {MAX_JSON_STRING} characters")
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


def error_response(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    # `error` for the trigger.dev SDK, which reads it from a 4xx answer; `status_code` and `detail` for the
    # error schema the OpenAPI document gives.
    body = {"message": message, "error": message, "status_code": status, "detail": message, **extra}
    return Response(body, status_code=status)


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


def secrets_unavailable(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.error("%s", error)
    return error_response(503, "the service cannot open its stored secrets (JOBS_SECRET_KEY); try again later")


def internal_error(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal error")
