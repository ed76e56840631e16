"""One webhook attempt over HTTP: POST the signed body, bounded in time and in what
is read back, and name the outcome with a status code or an error code.

Bounded: connecting (name resolution included) within the connect timeout, and the
whole attempt (connect, TLS, send, response head, the read below) within the total
timeout, so a receiver that accepts and never answers, or answers one byte a
minute, holds one delivery slot for at most that long. At most
`MAX_RESPONSE_BYTES` of the response are read (raw, never decompressed), then the
connection is closed: the body is never stored or logged, only the status code.
Redirects are never followed: a 3xx is a failed attempt (`redirect`), so a receiver
cannot send the service on to an address it could not register.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from service.events.ssrf import Network, url_problems
from service.events.transport import BlockedDestinationError, CheckedTransport

MAX_RESPONSE_BYTES: Final = 64 * 1024
USER_AGENT: Final = "Accord-Webhooks/1"

# Error codes of an attempt that got no usable answer (webhook_attempts.error).
ERROR_CODES: Final = (
    "blocked",  # an address webhooks may not reach (service/events/ssrf.py)
    "dns",  # the host does not resolve
    "invalid_url",  # not an address webhooks may use (scheme, user information, ...)
    "refused",  # the connection was refused
    "connect",  # the connection failed otherwise
    "tls",  # the TLS handshake or the certificate check failed
    "timeout",  # connect or total timeout
    "protocol",  # not a valid HTTP response
    "network",  # the connection broke
    "redirect",  # a 3xx answer: never followed
    "secret",  # the endpoint's secret could not be opened: nothing was sent
)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def result(self) -> str:
        """For a metric's label: the status class (2xx, 4xx, ...) or the error code."""
        if self.error is not None:
            return self.error
        return f"{(self.status_code or 0) // 100}xx"


def new_client(
    allowed: Sequence[Network], *, connect_timeout: float, connections: int
) -> httpx.AsyncClient:
    """The dispatcher's HTTP client: the checked transport, no redirects, no proxies
    or credentials from the environment."""
    return httpx.AsyncClient(
        transport=CheckedTransport(allowed, max_connections=connections),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(connect_timeout, connect=connect_timeout),
        headers={"user-agent": USER_AGENT},
    )


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def error_code(error: BaseException) -> str:
    if isinstance(error, BlockedDestinationError):
        return "dns" if error.unresolved else "blocked"
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return "invalid_url"
    chain = _causes(error)
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused"
    if isinstance(error, httpx.ConnectError):
        return "connect"
    if isinstance(error, httpx.ProtocolError):
        return "protocol"
    return "network"


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    total_timeout: float,
    require_https: bool,
) -> Outcome:
    """One attempt; never raises for anything the receiver or the network does."""
    started = time.monotonic()

    def outcome(status_code: int | None, error: str | None) -> Outcome:
        return Outcome(status_code, error, int((time.monotonic() - started) * 1000))

    if url_problems(url, require_https=require_https):
        return outcome(None, "invalid_url")
    try:
        async with asyncio.timeout(total_timeout):
            request = client.build_request(
                "POST", url, content=body, headers={**headers, "content-type": "application/json"}
            )
            response = await client.send(request, stream=True)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, OSError) as error:
        return outcome(None, error_code(error))
    status = response.status_code
    return outcome(status, "redirect" if 300 <= status < 400 else None)
