"""HTTP peers on 127.0.0.1 for the exec tests: a reverse proxy that records every request it forwards (method,
path, trigger action, body size), put between the service and the SDK endpoint or the SDK and the service to
measure what crosses; and a target that holds its answers until told to give them."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


async def serve_locally(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serves `app` on 127.0.0.1, on a free port: its runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server  # the listening socket's port: TCPSite has no public accessor
    return runner, server.sockets[0].getsockname()[1]


@dataclass(frozen=True)
class Forwarded:
    method: str
    path: str
    action: str | None  # x-trigger-action
    request_bytes: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


class RecordingProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[Forwarded] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def __aenter__(self) -> "RecordingProxy":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner, self.port = await serve_locally(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def of(self, method: str, path_prefix: str) -> list[Forwarded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.requests.append(
            Forwarded(
                request.method,
                request.path,
                request.headers.get("x-trigger-action"),
                len(body),
                body,
                {name.lower(): value for name, value in request.headers.items()},
            )
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers, allow_redirects=False
        ) as answer:
            content = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            if "content-encoding" in answer.headers:
                out["content-encoding"] = answer.headers["content-encoding"]
            return web.Response(status=answer.status, body=content, headers=out)


class GatedPeer:
    """A real HTTP target that holds every answer until `gate` is set, and counts the requests."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "GatedPeer":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self.runner, self.port = await serve_locally(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        self.gate.set()
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        await self.gate.wait()
        return web.json_response({"n": self.requests})
