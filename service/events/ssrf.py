"""Where a webhook may be sent: never into the service's own network.

A webhook URL is an address the service will call, chosen by an organization's
admin: without limits it is a way to make the service reach its own database, a
cloud metadata endpoint or an internal admin page (SSRF). So:

- the URL is `https` (plain `http` only outside production), has a host, no user
  information, and no fragment;
- every address its host resolves to must be public: loopback, private (10/8,
  172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the metadata
  address, fe80::/10), shared (100.64/10), multicast, reserved and unspecified
  addresses are refused, and so is an IPv4 address mapped into IPv6 that is one of
  them;
- except the networks a deployer lists in `ACCORD_WEBHOOK_ALLOWED_NETWORKS` (for
  receivers on a private network; the tests list the loopback network);
- the check runs when the endpoint is registered and again on every connection,
  on the address actually connected to (service/events/transport.py), so a name
  that resolves elsewhere later (DNS rebinding) is caught; redirects are never
  followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(ValueError):
    """The host resolves to an address webhooks may not reach (or not at all)."""


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def is_blocked(address: IPAddress, allowed: Sequence[Network]) -> bool:
    if any(address in network for network in allowed):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_blocked(address.ipv4_mapped, allowed)
    return not address.is_global or address.is_multicast


def url_problems(url: str, *, require_https: bool) -> list[str]:
    """What is wrong with `url` as a webhook address, before any resolution."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ["not a valid URL"]
    problems = []
    schemes = ("https",) if require_https else ("https", "http")
    if parts.scheme not in schemes:
        problems.append("the URL must use " + " or ".join(schemes))
    if not parts.hostname:
        problems.append("the URL must name a host")
    if parts.username is not None or parts.password is not None:
        problems.append("the URL must not carry user information")
    if parts.fragment:
        problems.append("the URL must not have a fragment")
    if port == 0:
        problems.append("the URL's port must not be 0")
    return problems


async def resolve(host: str, port: int, allowed: Sequence[Network]) -> list[IPAddress]:
    """Every address `host` resolves to, if none is blocked; else BlockedAddressError."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as error:
            raise BlockedAddressError("the host does not resolve") from error
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise BlockedAddressError("the host does not resolve")
    blocked = [a for a in addresses if is_blocked(a, allowed)]
    if blocked:
        raise BlockedAddressError("the host resolves to an address webhooks may not reach")
    return addresses
