"""The operations server of a process: `/metrics` (the Prometheus text format of the default registry),
`/healthz` (alive) and `/readyz` (ready, or 503 naming what is not), on its own port.

The roles a process runs register what readiness takes (named probes) and the gauges that need a query (refreshed
just before each scrape, within a short time, so that no message pays for them)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
REFRESH_SECONDS = 2.0

Probe = Callable[[], Awaitable[bool]]
Refresh = Callable[[], Awaitable[None]]


class OpsServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port  # the port it listens on once started (0 asks for a free one)
        self._probes: dict[str, Probe] = {}
        self._refreshes: dict[str, Refresh] = {}
        self._failing: set[str] = set()  # refreshes that failed last time (logged once until they recover)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def probe(self, name: str, probe: Probe) -> None:
        """Readiness takes `probe` to answer True (a probe of the same name is replaced)."""
        self._probes[name] = probe

    def refresh(self, name: str, refresh: Refresh) -> None:
        """Run `refresh` before each scrape (it sets gauges)."""
        self._refreshes[name] = refresh

    async def start(self) -> None:
        app = web.Application(middlewares=[_json_errors])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            await self.stop()
            raise RuntimeError(f"the operations port {self.port} is not free ({error}); set JOBS_OPS_PORT") from error
        server: Any = site._server  # the bound socket tells the port a 0 got
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._refresh_all()
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def _refresh_all(self) -> None:
        names = list(self._refreshes)
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(self._refreshes[name](), REFRESH_SECONDS) for name in names), return_exceptions=True
        )
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if name not in self._failing:
                    self._failing.add(name)
                    log.warning("metrics: could not refresh %s (%s); its gauges keep their last values", name,
                                type(outcome).__name__ if isinstance(outcome, TimeoutError) else outcome)  # fmt: skip
            elif name in self._failing:
                self._failing.discard(name)
                log.info("metrics: %s refreshed again", name)

    async def _readyz(self, request: web.Request) -> web.Response:
        names = list(self._probes)
        outcomes = await asyncio.gather(*(_ok(self._probes[name]) for name in names))
        checks = dict(zip(names, outcomes, strict=True))
        failing = [name for name, ok in checks.items() if not ok]
        if failing:
            return web.json_response({"status": "not ready", "failing": failing, "checks": checks}, status=503)
        return web.json_response({"status": "ready", "checks": checks})


async def _ok(probe: Probe) -> bool:
    try:
        return await asyncio.wait_for(probe(), PROBE_SECONDS)
    except Exception:
        return False


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """Unknown paths and methods answer JSON, as the API does."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        body = {"error": error.reason, "paths": ["/metrics", "/healthz", "/readyz"]}
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return web.json_response(body, status=error.status, headers=headers)
