"""The HTTP transport of webhook deliveries: it connects only where webhooks may go.

An organization's admin chooses a webhook's URL, so the dispatcher must never be
the way into the service's own network (SSRF; service/events/ssrf.py). A check of
the name at registration is not enough: a name can resolve elsewhere a minute later
(DNS rebinding), and an HTTP client that resolves the name again when it connects
would reach whatever the second answer says. So this transport resolves each host
itself, checks EVERY address the name resolves to with `is_blocked` (the deployer's
allow-list excepted), and hands the connection layer the checked address, never the
name: there is no second resolution to rebind.

It is httpx's own connection machinery (httpcore's `AsyncConnectionPool`) with one
part replaced, the network backend that opens TCP connections. Everything above it
stays as in httpx: TLS is negotiated by the pool with the URL's HOST NAME as the
server name, so SNI and certificate checks are against the name, not the address
connected to. Redirects are the client's business and the dispatcher's client never
follows them (a 3xx is a failed attempt).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Final, NoReturn

import httpcore
import httpx

from service.events.ssrf import BlockedAddressError, Network, resolve


class BlockedDestinationError(httpx.ConnectError):
    """The host resolves to an address webhooks may not reach (or does not resolve)."""

    def __init__(self, message: str, *, unresolved: bool = False) -> None:
        super().__init__(message)
        self.unresolved = unresolved


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, connects to a checked address only."""

    def __init__(self, allowed: Sequence[Network]) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port, self._allowed)
        except BlockedAddressError as error:
            raise BlockedDestinationError(
                str(error), unresolved=isinstance(error.__cause__, OSError)
            ) from error
        failure: Exception | None = None
        for address in addresses:  # every one of them passed the check
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # noqa: S101 - resolve() returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestinationError("webhooks are sent over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore's exceptions as httpx's (what httpx's own transport does), most specific first.
_EXCEPTIONS: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


def _reraise(error: Exception) -> NoReturn:
    """Raise `error` as the httpx exception httpx's own transport would raise."""
    for source, target in _EXCEPTIONS:
        if isinstance(error, source):
            raise target(str(error)) from error
    raise error


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpcore.Response) -> None:
        self._response = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._response.aiter_stream():
                yield part
        except Exception as error:  # noqa: BLE001 - re-raised, as httpx's own exception
            _reraise(error)

    async def aclose(self) -> None:
        await self._response.aclose()


class CheckedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that reaches only addresses webhooks may reach."""

    def __init__(
        self,
        allowed: Sequence[Network],
        *,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpcore.default_ssl_context(),
            max_connections=max_connections,
            keepalive_expiry=30.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=CheckedBackend(allowed),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):  # pragma: no cover
            raise TypeError("an async request body is needed")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except Exception as error:  # noqa: BLE001 - re-raised, as httpx's own exception
            _reraise(error)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
