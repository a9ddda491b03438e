"""The benchmark's load generator: keep-alive HTTP/1.1 connections to the API, one request at a time each.

Far lighter than a general-purpose client, so that on a small machine the load generator leaves the CPU to
what it measures. It speaks just what the API answers: a status line, headers and a Content-Length body.
"""

import asyncio
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import msgspec


class LoadError(Exception):
    pass


class ApiConnections:
    """Up to `size` connections; given several API processes' URLs, the connections go to each in turn."""

    def __init__(self, base_url: str | Sequence[str], headers: Mapping[str, str], size: int) -> None:
        urls = [urlsplit(url) for url in ([base_url] if isinstance(base_url, str) else base_url)]
        self.addresses = [(url.hostname or "127.0.0.1", url.port or 80) for url in urls]
        self.host = self.addresses[0][0]
        self._turn = 0
        self.head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.size = size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._opened = 0

    async def post(self, path: str, body: object) -> tuple[int, object]:
        """POST `body` as JSON; the status and the decoded JSON answer."""
        content = msgspec.json.encode(body)
        request = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\n{self.head}"
            f"content-type: application/json\r\ncontent-length: {len(content)}\r\n\r\n"
        ).encode() + content
        return await self._exchange(request)

    async def get(self, path: str) -> tuple[int, object]:
        """GET `path`; the status and the decoded JSON answer."""
        return await self._exchange(f"GET {path} HTTP/1.1\r\nhost: {self.host}\r\n{self.head}\r\n".encode())

    async def _exchange(self, request: bytes) -> tuple[int, object]:
        reader, writer = await self._connection()
        try:
            writer.write(request)
            status, answer = await _response(reader)
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        self._idle.put_nowait((reader, writer))
        return status, answer

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            host, port = self.addresses[self._turn % len(self.addresses)]
            self._turn += 1
            try:
                return await asyncio.open_connection(host, port)
            except BaseException:
                self._opened -= 1
                raise
        return await self._idle.get()

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()
        self._opened = 0


async def _response(reader: asyncio.StreamReader) -> tuple[int, object]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise LoadError(f"answer without Content-Length: {lines[0]}")
    body = await reader.readexactly(length)
    return status, msgspec.json.decode(body) if body else None
