"""The address classification of the URL policy, and what its URL check refuses before any lookup."""

import ipaddress

import pytest

from app.adapters.url_policy import UrlPolicy, parse_networks, permitted, reached_addresses
from app.errors import ClientError

ip = ipaddress.ip_address
LOOPBACK_V4 = parse_networks("127.0.0.0/8")


@pytest.mark.parametrize(
    ("address", "reached"),
    [
        ("8.8.8.8", ["8.8.8.8"]),
        ("2001:4860:4860::8888", ["2001:4860:4860::8888"]),
        ("::ffff:127.0.0.1", ["127.0.0.1"]),  # IPv4-mapped
        ("::127.0.0.1", ["127.0.0.1"]),  # IPv4-compatible
        ("::ffff:0:127.0.0.1", ["127.0.0.1"]),  # IPv4-translated
        ("64:ff9b::7f00:1", ["127.0.0.1"]),  # NAT64, well-known prefix
        ("2002:a00:1::5", ["10.0.0.1"]),  # 6to4
        ("2001:0:808:808:0:0:80ff:fffe", ["8.8.8.8", "127.0.0.1"]),  # Teredo: server, client (inverted bits)
        ("::1", ["::1"]),  # loopback itself, not IPv4-compatible
        ("::", ["::"]),
    ],
)
def test_the_addresses_an_address_reaches(address: str, reached: list[str]) -> None:
    assert reached_addresses(ip(address)) == tuple(ip(a) for a in reached)


def test_a_local_use_nat64_address_is_read_at_every_prefix_length() -> None:
    # 127.0.0.1 as a /48 translator writes it (bits 48-63, then 72-87 past the zero u octet) ...
    assert ip("127.0.0.1") in reached_addresses(ip("64:ff9b:1:7f00:0:100::"))
    # ... and as a /96 one does.
    assert ip("127.0.0.1") in reached_addresses(ip("64:ff9b:1::7f00:1"))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "233.252.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fec0::1",
        "fc00::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::ffff:0:127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::7f00:1",
        "64:ff9b:1:7f00:0:100::",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2001:0:808:808:0:0:80ff:fffe",
        "2001:0:a00:1:0:0:f7f7:f7f7",  # Teredo through a private server
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert not permitted(ip(address), [])


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "::ffff:0:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:0:808:808:0:0:f7f7:f7f7",
    ],
)
def test_public_addresses_are_permitted_in_every_form(address: str) -> None:
    assert permitted(ip(address), [])


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::ffff:127.0.0.1", True),
        ("64:ff9b::7f00:1", True),
        ("::ffff:0:127.0.0.2", True),
        ("::1", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:0:808:808:0:0:80ff:fffe", True),  # both of what it reaches are allowed or public
        ("2001:0:a00:1:0:0:80ff:fffe", False),  # its server is private and not allowed
    ],
)
def test_an_allowed_network_is_judged_by_the_address_reached(address: str, allowed: bool) -> None:
    assert permitted(ip(address), LOOPBACK_V4) is allowed


def test_an_allowed_ipv6_network_covers_its_own_addresses() -> None:
    assert permitted(ip("::1"), parse_networks("::1/128"))
    assert permitted(ip("fd00::5"), parse_networks("fd00::/8"))
    assert not permitted(ip("fd01::5"), parse_networks("fd00::/16"))


def test_a_refusal_names_the_address_and_what_it_reaches() -> None:
    reason = UrlPolicy().refusal(ip("::ffff:169.254.169.254"))
    assert reason is not None
    assert "::ffff:a9fe:a9fe, which reaches 169.254.169.254" in reason
    assert "JOBS_ALLOWED_PRIVATE_NETWORKS" in reason
    assert UrlPolicy().refusal(ip("8.8.8.8")) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1/", "`url` is not a valid URL"),
        ("http://[::1]:99999/", "`url` is not a valid URL"),
        ("http://1.1.1.1:-1/", "`url` is not a valid URL"),
        ("http://1.1.1.1:0/", "`url` has an invalid port (0)"),
        ("http://1.1.1.1:http/", "`url` is not a valid URL"),
        ("http://" + "a" * 10_000 + "/", "`url` is longer than 2048 characters"),
        ("http://" + "a" * 2_000 + "/", "`url` has a host name longer than 253 characters"),
        ("https://1.1.1.1/" + "x" * 2_040, "`url` is longer than 2048 characters"),
        ("file:///etc/passwd", "`url` must be an http(s) URL with a host"),
        ("http:///path", "`url` must be an http(s) URL with a host"),
        ("http://[::ffff:127.0.0.1]/", "`url` points to a private address (::ffff:7f00:1, which reaches 127.0.0.1)"),
        ("http://[64:ff9b::7f00:1]/", "`url` points to a private address (64:ff9b::7f00:1, which reaches 127.0.0.1)"),
        ("http://[::127.0.0.1]/", "`url` points to a private address"),
        ("http://[::ffff:0:127.0.0.1]/", "`url` points to a private address"),
    ],
)
async def test_the_url_check_refuses_with_a_client_error_naming_the_field(url: str, message: str) -> None:
    with pytest.raises(ClientError) as refused:
        await UrlPolicy().check(url, "url")
    assert refused.value.message.startswith(message), refused.value.message
    assert refused.value.status_code == 400


async def test_public_ip_literals_pass_the_url_check_without_a_lookup() -> None:
    for url in ("https://8.8.8.8/hook", "http://[2001:4860:4860::8888]:8080/x", "http://[::ffff:8.8.8.8]/"):
        assert await UrlPolicy().check(url, "url") == url
