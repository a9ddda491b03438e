"""io.waitForEvent's ephemeral event dispatchers: POST /api/v1/event-dispatchers/ephemeral."""

from typing import Any

import msgspec
from litestar import post
from litestar.params import JSONBody

from app.api.answers import RegisteredDispatcher
from app.api.common import BEARER, Env, Service, errors
from app.errors import ClientError
from app.service.dispatchers import DispatcherSpec
from domain.dispatchers import DEFAULT_SOURCE, DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS
from domain.event_filter import check_filter

MAX_NAMES = 100
MAX_NAME = 200


class DispatcherBody(msgspec.Struct):
    """EphemeralEventDispatcherRequestBody."""

    url: str
    name: str | list[str]
    source: str | None = None
    filter: dict[str, Any] | None = None
    contextFilter: dict[str, Any] | None = None
    accountId: str | None = None
    timeoutInSeconds: int = DEFAULT_TIMEOUT_SECONDS


def _spec(body: DispatcherBody) -> DispatcherSpec:
    names = [body.name] if isinstance(body.name, str) else body.name
    if not 0 < len(names) <= MAX_NAMES or not all(0 < len(name) <= MAX_NAME for name in names):
        raise ClientError(f"`name` must be 1 to {MAX_NAMES} event names of 1 to {MAX_NAME} characters")
    if body.source is not None and not 0 < len(body.source) <= MAX_NAME:
        raise ClientError(f"`source` must be 1 to {MAX_NAME} characters")
    if not MIN_TIMEOUT_SECONDS <= body.timeoutInSeconds <= MAX_TIMEOUT_SECONDS:
        raise ClientError(f"`timeoutInSeconds` must be {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}")
    for field, value in (("filter", body.filter), ("contextFilter", body.contextFilter)):
        try:
            if value is not None:
                check_filter(value)
        except ValueError as error:
            raise ClientError(f"`{field}`: {error}") from None
    return DispatcherSpec(
        url=body.url,
        names=names,
        source=body.source or DEFAULT_SOURCE,
        payload_filter=body.filter,
        context_filter=body.contextFilter,
        timeout_seconds=body.timeoutInSeconds,
    )


@post(
    "/api/v1/event-dispatchers/ephemeral",
    status_code=200,
    tags=["tasks"],
    summary="Wait for an event (io.waitForEvent): the first one matching completes the task of the callback URL",
    security=BEARER,
    responses=errors(401, 404),
)
async def create_ephemeral_dispatcher(
    service: Service, env: Env, data: JSONBody[DispatcherBody]
) -> RegisteredDispatcher:
    dispatcher = await service.dispatchers.register(env, _spec(data))
    return RegisteredDispatcher(str(dispatcher.id))


HANDLERS = [create_ephemeral_dispatcher]
