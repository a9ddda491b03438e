"""Which URLs the service will call: http(s) with a host, and no private address unless allowed."""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from app.errors import ClientError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> list[Network]:
    """`10.0.0.0/8, ::1/128` → networks; raises ValueError naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return networks


class UrlPolicy:
    def __init__(self, allowed_private: Sequence[Network] = ()) -> None:
        self.allowed_private = list(allowed_private)

    async def check(self, url: str, field: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"`{field}` must be an http(s) URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ClientError(f"`{field}` has an invalid port") from None
        for address in await self._addresses(parts.hostname, field):
            if not address.is_global and not any(address in network for network in self.allowed_private):
                raise ClientError(
                    f"`{field}` points to a private address ({address}); "
                    "allow its network with JOBS_ALLOWED_PRIVATE_NETWORKS"
                )
        return url

    async def _addresses(self, host: str, field: str) -> list[Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            async with asyncio.timeout(3):
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            raise ClientError(f"`{field}`: cannot resolve host {host!r}") from None
        return [ipaddress.ip_address(info[4][0]) for info in infos]
