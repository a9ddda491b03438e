"""An OTLP/HTTP trace receiver for benchmarks: takes what the roles export (POST /v1/traces, protobuf), counts
the spans and answers at once, so `bench --export-traces` measures the service with every span exported."""

import asyncio
import sys

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app import event_loop


class SpanCounter:
    def __init__(self) -> None:
        self.spans = 0

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        self.spans += sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def count(self, request: web.Request) -> web.Response:
        return web.json_response({"spans": self.spans})


async def serve(port: int) -> None:
    counter = SpanCounter()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", counter.receive)
    app.router.add_get("/spans", counter.count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[attr-defined]
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        event_loop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
