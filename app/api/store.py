"""The key-value store (io.store.env/job/run and client.store of the trigger.dev v2 SDK): GET, PUT, DELETE
and HEAD on /api/v1/store/{key}, where the key is percent-encoded (the SDK sends encodeURIComponent(key), so a
key may hold `/`, `:` or anything else). PUT takes the value as the request's text."""

from litestar import Response, delete, get, head, put
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec

from app.api.answers import StoreDeleted, StoreGot, StoreSet
from app.api.common import BEARER, AnyRequest, Env, Service, errors
from app.errors import ClientError
from domain.key_value import BadKey, BadValue, check_value, parse_key

PREFIX = "/api/v1/store/"
ROUTE = PREFIX + "{key:path}"


class ValueTooLarge(ClientError):
    status_code = 413


def _key(request: AnyRequest) -> str:
    """The key as sent, from the raw path: the decoded one cannot tell a bad encoding from a replacement
    character."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    encoded = raw[len(PREFIX) :] if raw.startswith(PREFIX.encode()) else b""
    try:
        return parse_key(encoded)
    except BadKey as error:
        raise ClientError(str(error)) from None


@get(
    ROUTE, tags=["store"], summary="A stored value (none when the key has none)", security=BEARER, responses=errors(401)
)
async def get_stored(request: AnyRequest, service: Service, env: Env) -> StoreGot:
    key = _key(request)
    value = await service.store.get(env.id, key)
    return StoreGot("GET", key) if value is None else StoreGot("GET", key, value)


@put(
    ROUTE,
    status_code=200,
    tags=["store"],
    summary="Store a value (the request's text, at most 256 KiB)",
    security=BEARER,
    responses=errors(401, 413),
)
async def set_stored(request: AnyRequest, service: Service, env: Env) -> StoreSet:
    key = _key(request)
    try:
        value = check_value(await request.body())
    except BadValue as error:
        raise (ValueTooLarge if error.too_large else ClientError)(str(error)) from None
    return StoreSet("SET", key, await service.store.set(env.id, key, value))


@delete(ROUTE, status_code=200, tags=["store"], summary="Delete a stored value", security=BEARER, responses=errors(401))
async def delete_stored(request: AnyRequest, service: Service, env: Env) -> StoreDeleted:
    key = _key(request)
    return StoreDeleted("DELETE", key, await service.store.delete(env.id, key))


@head(
    ROUTE,
    tags=["store"],
    summary="Whether a key has a value: 200 when it has, 404 when not (no body, as for any HEAD)",
    security=BEARER,
    responses={
        code: ResponseSpec(None, description=description, generate_examples=False)
        for code, description in (
            (400, "The key is not a valid one (no body, as for any HEAD)."),
            (401, "No API key, or not a valid one."),
            (404, "The key has no value."),
            (503, "The database is unavailable; try again shortly."),
        )
    },
)
async def has_stored(request: AnyRequest, service: Service, env: Env) -> Response[None]:
    found = await service.store.has(env.id, _key(request))
    return Response(None, status_code=200 if found else 404, media_type=MediaType.JSON)


HANDLERS = [get_stored, set_stored, delete_stored, has_stored]
