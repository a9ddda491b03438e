"""Which URLs and addresses the service will call: http(s) with a host, and no private address unless allowed.

The same policy judges a URL when it is registered (a clear 400 for the caller) and every address a connection
is about to use (app/adapters/endpoint_client.py), since a host name may resolve differently later (DNS rebinding)."""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from app.errors import ClientError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253  # the longest DNS name
RESOLVE_TIMEOUT_SECONDS = 3.0

_V4_TRANSLATED = 0xFFFF_0000  # ::ffff:0:a.b.c.d (SIIT), the 96 bits above the IPv4 address
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# RFC 6052: where a translator with a prefix of each length puts the IPv4 address (bits 64-71 stay zero).
_NAT64_PREFIX_LENGTHS = (48, 56, 64, 96)


def parse_networks(text: str) -> list[Network]:
    """`10.0.0.0/8, ::1/128` → networks; raises ValueError naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return networks


def reached_addresses(address: Address) -> tuple[Address, ...]:
    """The IPv4 addresses a connection to an IPv6 form that embeds one really reaches (IPv4-mapped,
    -compatible, -translated, NAT64, 6to4, Teredo), or the address itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return (address,)
    value = int(address)
    upper = value >> 32
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if upper == _V4_TRANSLATED or (upper == 0 and value > 1):  # translated, or compatible (not :: or ::1)
        return (ipaddress.IPv4Address(value & 0xFFFF_FFFF),)
    if address in _NAT64_WELL_KNOWN:
        return (ipaddress.IPv4Address(value & 0xFFFF_FFFF),)
    if address in _NAT64_LOCAL:
        # Local-use NAT64: the translator's prefix length is not known here, so every reading must pass.
        return tuple(_nat64_embedded(value, length) for length in _NAT64_PREFIX_LENGTHS)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # (server, client): both are reached
    return (address,)


def _nat64_embedded(value: int, prefix_length: int) -> ipaddress.IPv4Address:
    if prefix_length == 96:
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    without_u_octet = ((value >> 64) << 56) | (value & ((1 << 56) - 1))  # 120 bits
    return ipaddress.IPv4Address((without_u_octet >> (120 - prefix_length - 32)) & 0xFFFF_FFFF)


def permitted(address: Address, allowed: Sequence[Network]) -> bool:
    """May the service connect to `address`? Only if every address it reaches is public, or lies in an
    explicitly allowed network (as does the address itself)."""
    if any(address in network for network in allowed):
        return True
    return all(
        _public(reached) or any(reached in network for network in allowed) for reached in reached_addresses(address)
    )


def _public(address: Address) -> bool:
    # `is_global` alone lets multicast and IPv6 site-local addresses through.
    if address.is_multicast or address.is_unspecified or address.is_link_local or address.is_loopback:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return address.is_global and not address.is_private and not address.is_reserved


class UrlPolicy:
    """Judges URLs and addresses. `resolver` is the name → addresses step (the system's by default; tests
    give their own); the check on what it answers is always this policy's."""

    def __init__(self, allowed_private: Sequence[Network] = (), resolver: AbstractResolver | None = None) -> None:
        self.allowed_private = list(allowed_private)
        self._resolver = resolver

    def refusal(self, address: Address) -> str | None:
        """Why the service will not connect to `address`, or None when it may."""
        if permitted(address, self.allowed_private):
            return None
        reached = [str(a) for a in reached_addresses(address) if a != address]
        via = f", which reaches {' and '.join(reached)}" if reached else ""
        return f"a private address ({address}{via}); allow its network with JOBS_ALLOWED_PRIVATE_NETWORKS"

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """The host's addresses, unchecked."""
        if self._resolver is None:
            self._resolver = ThreadedResolver()  # made on first use: it belongs to the running loop
        return await self._resolver.resolve(host, port, family)

    async def check(self, url: str, field: str) -> str:
        """The URL, if the service may call it; else a ClientError naming `field`."""
        parts = _split(url, field)
        host = parts.hostname
        assert host is not None
        for address in await self._addresses(host, field):
            if reason := self.refusal(address):
                raise ClientError(f"`{field}` points to {reason}")
        return url

    async def _addresses(self, host: str, field: str) -> list[Address]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        if len(host) > MAX_HOST_LENGTH:
            raise ClientError(f"`{field}` has a host name longer than {MAX_HOST_LENGTH} characters")
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                results = await self.resolve(host)
        except (OSError, TimeoutError, UnicodeError, ValueError):
            raise ClientError(f"`{field}`: cannot resolve host {host!r}") from None
        if not results:
            raise ClientError(f"`{field}`: cannot resolve host {host!r}")
        return [ipaddress.ip_address(result["host"]) for result in results]


def _split(url: str, field: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise ClientError(f"`{field}` is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise ClientError(f"`{field}` is not a valid URL (malformed host or port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"`{field}` must be an http(s) URL with a host")
    if port == 0:
        raise ClientError(f"`{field}` has an invalid port (0)")
    return parts
