"""What every HTTP handler shares: the service and the caller's environment (injected), parsing helpers, and
the error answers."""

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Reference, SecurityRequirement, SecurityScheme
from sqlalchemy.exc import DataError

from app.adapters.store import ConcurrencyConflict
from app.api.answers import ErrorAnswer
from app.errors import ClientError, NotFound
from app.faults import is_unavailable
from app.observability import logs
from app.service import JobsService
from app.service.environments import EnvironmentInfo
from domain.status import InvalidTransition

log = logging.getLogger(__name__)

AnyRequest = Request[Any, Any, State]
_unavailable = logs.Throttled(log, "database unavailable: the API answers 503")


Service = NamedDependency[JobsService]
Env = NamedDependency[EnvironmentInfo]

# The OpenAPI document's words for what a route needs and may answer.
SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "bearer": SecurityScheme(
        type="http", scheme="bearer", description="An environment's API key (`tr_dev_...`, `tr_prod_...`)."
    )
}
BEARER: list[SecurityRequirement] = [{"bearer": []}]
_ERRORS = {
    400: "The request is invalid; the message says why.",
    401: "No API key, or not a valid one.",
    404: "No such run, job, task or event in the key's environment.",
    409: "The run or task is not in a state that allows this, or an Idempotency-Key was used for another request.",
    413: "The value is larger than the store takes.",
    422: "The endpoint could not be called, or too many test runs of the job started at once.",
    503: "The database, or the key that opens stored secrets, is unavailable; try again shortly.",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers a route documents: 400 and 503, which any route may give, and `codes`."""
    return {
        code: ResponseSpec(ErrorAnswer, description=_ERRORS[code], generate_examples=False)
        for code in sorted({400, 503, *codes})
    }


async def caller_environment(request: AnyRequest, service: Service) -> EnvironmentInfo:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise HTTPException(status_code=401, detail="missing API key: send `Authorization: Bearer <key>`")
    env = await service.authenticator.authenticate(key.strip())
    if env is None:
        raise HTTPException(status_code=401, detail="invalid API key")
    return env


def parse_run_id(run_id: str) -> UUID:
    try:
        return UUID(run_id)
    except ValueError:
        raise NotFound(f"run {run_id!r} not found") from None


def parse_instant(text: str, field: str) -> datetime:
    """An ISO 8601 date and time with its time zone, as a datetime in UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ClientError(f"`{field}` must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ClientError(f"`{field}` needs a time zone (e.g. Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ClientError(f"`{field}` is out of range: it is not a time in years 1 to 9999 (UTC)") from None


def error_response(status_code: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    """An ErrorAnswer, as a dict: a ClientError may carry any extra field. A 5xx names the request's id, which
    its log lines carry."""
    body = {"message": message, "error": message, "status_code": status_code, "detail": message, **extra}
    if status_code >= 500 and (request_id := logs.request_id.get()) is not None:
        body["requestId"] = request_id
    return Response(body, status_code=status_code)


def client_error(_: AnyRequest, error: ClientError) -> Response[dict[str, Any]]:
    return error_response(error.status_code, error.message, **error.extra)


def invalid_transition(_: AnyRequest, error: InvalidTransition) -> Response[dict[str, Any]]:
    return error_response(
        409, f"the run is {error.current}: it cannot go to {error.target}", status=error.current.value
    )


def write_conflict(_: AnyRequest, error: ConcurrencyConflict) -> Response[dict[str, Any]]:
    """Other writers kept changing what this request writes (or its first copy is still being recorded)."""
    log.info("write conflict: %s", error)
    return error_response(409, "what this request changes was changing under it; send it again")


def validation_error(_: AnyRequest, error: ValidationException) -> Response[dict[str, Any]]:
    return error_response(400, error.detail or "invalid request", errors=error.extra or [])


def http_error(_: AnyRequest, error: HTTPException) -> Response[dict[str, Any]]:
    return error_response(error.status_code, error.detail)


def database_error(request: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    """503 only when the database cannot be reached: a client told to retry must have a reason to."""
    if is_unavailable(error):
        _unavailable.failed(error)
        return error_response(503, "the database is unavailable; try again shortly")
    if isinstance(error, DataError | asyncpg.DataError):
        return error_response(400, "the request holds a value the database cannot store")
    return internal_error(request, error)


def secrets_unavailable(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.error("%s", error)
    return error_response(503, "the service cannot open its stored secrets (JOBS_SECRET_KEY); try again later")


def internal_error(_: AnyRequest, error: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=error)
    return error_response(500, "internal error")
