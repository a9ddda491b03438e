"""A minimal trigger.dev endpoint for benchmarks: one job, and every EXECUTE_JOB answers SUCCESS at once (or
after a fixed delay, to stand for a slow job), so what is measured is the service, not the endpoint."""

import asyncio
import json
import sys
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
INDEX = json.dumps(
    {"jobs": [JOB], "sources": [], "webhooks": [], "dynamicTriggers": [], "dynamicSchedules": [], "httpEndpoints": []}
).encode()
SUCCESS = b'{"status":"SUCCESS","output":{"ok":true}}'


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
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if "index_endpoint" in head or not self.delay:
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
