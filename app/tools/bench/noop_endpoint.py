"""A minimal trigger.dev endpoint for benchmarks: one job, and every EXECUTE_JOB answers SUCCESS at once (or
after a fixed delay, to stand for a slow job), so what is measured is the service, not the endpoint. A second
job, `parked`, never ends within a benchmark: each execution asks to be run again in an hour (a rate limit),
so its runs stay live, holding no worker, for the dashboard's open run pages.

It counts the EXECUTE_JOB calls it gets for each run (`GET /executions` answers them as
`{"<run id>": <calls>}`), so the bench can show no run was executed twice."""

import asyncio
import collections
import json
import sys
import time
import typing

from app import event_loop

JOB = {
    "id": "noop",
    "name": "No-op",
    "version": "1.0.0",
    "event": {"name": "bench.noop", "source": "trigger.dev"},
    "trigger": {"type": "static", "rule": {"event": "bench.noop", "source": "trigger.dev"}},
    "enabled": True,
}
PARKED = {
    **JOB,
    "id": "parked",
    "name": "Parked",
    "event": {"name": "bench.parked", "source": "trigger.dev"},
    "trigger": {"type": "static", "rule": {"event": "bench.parked", "source": "trigger.dev"}},
}
INDEX = json.dumps(
    {
        "jobs": [JOB, PARKED],
        "sources": [],
        "webhooks": [],
        "dynamicTriggers": [],
        "dynamicSchedules": [],
        "httpEndpoints": [],
    }
).encode()
SUCCESS = b'{"status":"SUCCESS","output":{"ok":true}}'
PARK_SECONDS = 3600
RUN_ID = b'"run":{"id":"'  # how the service's compact JSON body names the run
EXECUTIONS: collections.Counter[str] = collections.Counter()


def _parked() -> bytes:
    return json.dumps({"status": "AUTO_YIELD_RATE_LIMIT", "reset": int((time.time() + PARK_SECONDS) * 1000)}).encode()


def _response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


class NoopProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the service's client."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.delay = delay_seconds

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if head.startswith("get /executions"):
                self.transport.write(_response(json.dumps(EXECUTIONS).encode()))
                continue
            if "execute_job" in head and (at := body.find(RUN_ID)) >= 0:
                EXECUTIONS[body[at + len(RUN_ID) : at + len(RUN_ID) + 36].decode()] += 1
            if b'"parked"' in body:
                self.transport.write(_response(_parked()))
            elif "index_endpoint" in head or not self.delay:
                self.transport.write(_response(INDEX if "index_endpoint" in head else SUCCESS))
            else:
                asyncio.get_running_loop().call_later(self.delay, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_response(SUCCESS))


async def serve(port: int, delay_ms: int = 0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: NoopProtocol(delay_ms / 1000), "127.0.0.1", port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        event_loop.run(serve(*(int(arg) for arg in sys.argv[1:3])))
    except KeyboardInterrupt:
        pass
