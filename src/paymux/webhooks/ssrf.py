"""SSRF guard for merchant webhook URLs.

A merchant chooses the URL, and the worker POSTs to it from inside our network, so a URL that
reaches loopback, private ranges or a cloud metadata address must be refused. Checking a URL
once (at registration) is not enough: DNS can change between the check and the connection
(rebinding). `resolve_checked` returns the exact addresses it approved, and the sender
connects to one of those (see sender.py), so the address checked is the address used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (host, port) -> IP address strings. Injected in tests; getaddrinfo by default.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_RESOLVE_TIMEOUT_SECONDS = 5.0

# Belt and braces next to ipaddress's is_global, whose tables vary across Python patch
# releases: these are never a merchant's public endpoint.
_BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, incl. cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",  # unspecified, loopback, IPv4-compatible
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",  # IETF protocol assignments, incl. Teredo
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL may not be used as a webhook endpoint; str() is a human-readable reason."""


class UnresolvableHost(UnsafeURL):
    """The host did not resolve (possibly temporary); the URL cannot be checked."""


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the guard, with the addresses that were approved for it."""

    url: str
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def host_is_ip(self) -> bool:
        return _ip_literal(self.host) is not None


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address is not a public unicast endpoint, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address.teredo is not None:
            embedded = address.teredo[1]
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"embeds {embedded} which is {inner}"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if any(address in net for net in _BLOCKED_NETWORKS):
        return "not publicly routable"
    if not address.is_global:
        return "not globally reachable"
    return None


async def _default_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _looks_numeric(host: str) -> bool:
    # "2130706433", "0x7f.1", "127.1": getaddrinfo would treat these as IPv4 in odd notations;
    # no real DNS name ends in a numeric label, so refuse them outright.
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit():
        return True
    return last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])


def _parse(url: str, *, allow_http: bool) -> tuple[SplitResult, str, int]:
    if any(c.isspace() or not c.isprintable() for c in url):
        raise UnsafeURL("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("URL is malformed or has an invalid port") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeURL("URL scheme must be https")
    if scheme == "http" and not allow_http:
        raise UnsafeURL("URL must use https (plain http is not allowed)")
    if "@" in parts.netloc:
        raise UnsafeURL("URL must not contain credentials (user:password@)")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL("URL has no host")
    if not host.isascii():
        # The Host header, SNI and the resolver all need the ASCII (punycode) form.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeURL("URL host is not a valid internationalized domain name") from None
    if port == 0:
        raise UnsafeURL("URL port must be between 1 and 65535")
    return parts, host, port if port is not None else (443 if scheme == "https" else 80)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str, port: int, resolver: Resolver, seconds: float) -> list[IPAddress]:
    try:
        async with asyncio.timeout(seconds):
            answers = await resolver(host, port)
    except (OSError, TimeoutError):
        raise UnresolvableHost(f"host {host!r} could not be resolved") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        literal = _ip_literal(answer.split("%", 1)[0])  # drop an IPv6 zone id
        if literal is None:
            raise UnsafeURL(f"host {host!r} resolved to a non-IP answer")
        addresses.append(literal)
    if not addresses:
        raise UnresolvableHost(f"host {host!r} has no addresses")
    return addresses


async def resolve_checked(
    url: str,
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver | None = None,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT_SECONDS,
) -> CheckedURL:
    """Validate `url`, resolve its host and return the approved addresses (raises UnsafeURL).

    Every resolved address must pass: one private answer among public ones is refused,
    because which one gets used is not ours to choose.
    """
    parts, host, port = _parse(url, allow_http=allow_http)
    literal = _ip_literal(host)
    if literal is not None:
        addresses = [literal]
    elif _looks_numeric(host):
        raise UnsafeURL("URL host looks like an IP address in a non-standard form")
    else:
        addresses = await _resolve(host, port, resolver or _default_resolver, resolve_timeout)
    if not allow_private:
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None:
                where = (
                    f"address {address}"
                    if literal is not None
                    else f"host {host!r} resolves to {address}"
                )
                raise UnsafeURL(f"{where}, which is {reason}, is not allowed")
    unique = tuple(dict.fromkeys(addresses))
    return CheckedURL(url=url, scheme=parts.scheme.lower(), host=host, port=port, addresses=unique)


async def check_url(
    url: str,
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver | None = None,
) -> None:
    """Raise UnsafeURL unless `url` is acceptable as a webhook endpoint right now."""
    await resolve_checked(
        url, allow_http=allow_http, allow_private=allow_private, resolver=resolver
    )
