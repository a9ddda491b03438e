"""A real HTTP/1.1 server on 127.0.0.1 for tests that need a peer to misbehave or to record what it got."""

import asyncio
from collections.abc import Callable

Answer = Callable[[dict[str, str], bytes], tuple[int, str] | None]


class HttpPeer:
    """Answers each request with `answer(headers, body)`: (status, JSON body), or None to drop the connection
    without answering. Header names are lower case. It listens on `host` (any loopback address) and `port`
    (a free one unless given)."""

    def __init__(self, answer: Answer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.answer = answer
        self.host = host
        self.requested_port = port
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> "HttpPeer":
        self.server = await asyncio.start_server(self._serve, self.host, self.requested_port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                headers = {}
                for line in head.split("\r\n")[1:]:
                    name, separator, value = line.partition(": ")
                    if separator:
                        headers[name.lower()] = value
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                answer = self.answer(headers, body)
                if answer is None:
                    return
                status, content = answer
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(content.encode())}\r\n\r\n{content}".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class CallbackReceiver(HttpPeer):
    """Records what the service POSTs to a callback URL; the first `fail_first` answers are 500."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__(self._answer)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        self.received.append((headers, body))
        return (500 if len(self.received) <= self.fail_first else 200), "{}"
