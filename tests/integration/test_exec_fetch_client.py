"""The request a server-performed task sends (EndpointClient.fetch) against real HTTP targets: redirects within
the URL policy, credentials kept to their origin, answers within the size limit, time-outs."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from app.adapters.endpoint_client import MAX_FETCHED_BYTES, EndpointClient, EndpointError
from app.adapters.url_policy import UrlPolicy, parse_networks
from tests.recording_proxy import serve_locally

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Target:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append({"path": request.path, "method": request.method, **dict(request.headers)})
        return await self.handler(request)

    async def __aenter__(self) -> "Target":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner, self.port = await serve_locally(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def client() -> AsyncIterator[EndpointClient]:
    client = EndpointClient(UrlPolicy(parse_networks("127.0.0.0/8")))
    yield client
    await client.close()


async def test_redirects_are_followed_and_credentials_stay_with_their_origin(client: EndpointClient) -> None:
    async def final(request: web.Request) -> web.Response:
        return web.json_response({"at": request.path})

    async with Target(final) as elsewhere:

        async def redirecting(request: web.Request) -> web.Response:
            if request.path == "/start":
                raise web.HTTPFound("/same-origin")
            raise web.HTTPSeeOther(elsewhere.url("/other-origin"))

        async with Target(redirecting) as origin:
            headers = {"Authorization": "Bearer s3cret", "X-Trace": "t"}
            response = await client.fetch("POST", origin.url("/start"), headers, '{"a": 1}', 5)
    assert (response.status_code, response.json()) == (200, {"at": "/other-origin"})
    assert [(h["path"], h["method"], h.get("Authorization")) for h in origin.seen] == [
        ("/start", "POST", "Bearer s3cret"),
        ("/same-origin", "GET", "Bearer s3cret"),  # a 302 after a POST is followed with a GET, as fetch does
    ]
    (moved,) = elsewhere.seen
    assert "Authorization" not in moved and moved["X-Trace"] == "t"


async def test_a_redirect_to_a_forbidden_address_is_refused(client: EndpointClient) -> None:
    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.0.0.7/admin")

    async with Target(to_private) as target:
        with pytest.raises(EndpointError) as refused:
            await client.fetch("GET", target.url("/"), {}, None, 5)
    assert refused.value.refused and "JOBS_ALLOWED_PRIVATE_NETWORKS" in str(refused.value)


async def test_an_answer_over_the_limit_is_refused(client: EndpointClient) -> None:
    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (MAX_FETCHED_BYTES + 1))

    async with Target(huge) as target:
        with pytest.raises(EndpointError) as refused:
            await client.fetch("GET", target.url("/"), {}, None, 5)
    assert refused.value.refused and "larger than" in str(refused.value)


async def test_a_slow_answer_times_out(client: EndpointClient) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async with Target(slow) as target:
        with pytest.raises(EndpointError) as late:
            await client.fetch("GET", target.url("/"), {}, None, 0.3)
    assert late.value.timed_out and not late.value.refused
