"""Every request passes the same limits before a handler sees it: JSON bodies within app.adapters.json_limits, and
no NUL character in the path or query (PostgreSQL can store none; it is a client error, not an outage)."""

from typing import Any

from litestar import Request, Response
from litestar.datastructures import State
from litestar.types.empty import Empty

from app.adapters.json_limits import JsonRefused, decode_untrusted
from app.api.common import AnyRequest, error_response
from app.errors import ClientError


class LimitedRequest(Request[Any, Any, State]):
    async def json(self) -> Any:
        if self._connection_state.json is Empty:
            self._connection_state.json = json_body(await self.body() or b"null")
        return self._connection_state.json


def json_body(body: bytes) -> Any:
    try:
        return decode_untrusted(body, "the request body")
    except JsonRefused as error:
        raise ClientError(str(error)) from None


async def refuse_nul_in_url(request: AnyRequest) -> Response[dict[str, Any]] | None:
    """A `before_request` hook: PostgreSQL stores no NUL, so a path or query holding one is refused here."""
    query = request.scope.get("query_string", b"")
    if "\x00" in request.scope["path"] or b"%00" in query or b"\x00" in query:
        return error_response(400, "the URL holds a NUL character")
    return None
