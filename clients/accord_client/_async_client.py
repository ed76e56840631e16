"""The asynchronous client, `AsyncAccordClient` (docs: clients/README.md).

`_async_client.py` and the `_async_*` modules of each area are the one source of
both clients: clients/tools/unasync.py writes `_client.py` and the `_sync_*`
modules from them, so the twins differ only in their transport.
"""

from __future__ import annotations

from typing import IO, Any

import httpx
from tenacity import AsyncRetrying

from accord_client._async_admin import AsyncAdminMethods
from accord_client._async_audit import AsyncAuditMethods
from accord_client._async_cases import AsyncCaseMethods
from accord_client._async_events import AsyncEventMethods
from accord_client._async_records import AsyncRecordsMethods
from accord_client._async_referrals import AsyncReferralMethods
from accord_client._async_reports import AsyncReportMethods
from accord_client._exceptions import raise_for_problem
from accord_client._http import DEFAULT_TIMEOUT, BearerAuth, retry_args
from accord_client._protocol import RequestSpec, RetryPolicy, response_body
from accord_client.witness import CheckpointWitness


class AsyncAccordClient(
    AsyncReferralMethods,
    AsyncRecordsMethods,
    AsyncCaseMethods,
    AsyncAuditMethods,
    AsyncAdminMethods,
    AsyncEventMethods,
    AsyncReportMethods,
):
    """The Accord API client: a method for every `/v1` operation. Use it as a
    context manager (`async with`), or call `close()`.

    `http_client` (your own httpx client, not closed by this one) or `transport`
    may be given, e.g. for tests. `witness` checks every checkpoint this client
    reads against the last one it saw (clients/README.md, "Witnessing the log").
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        witness: CheckpointWitness | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = BearerAuth(token)
        self._retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        self._signing_keys: dict[tuple[str, str], bytes] = {}
        self.witness = witness

    async def __aenter__(self) -> AsyncAccordClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncAccordClient(base_url={self._base!r})"

    # -- transport ----------------------------------------------------------------------

    async def _once(self, spec: RequestSpec) -> httpx.Response:
        response = await self._http.request(
            spec.method,
            self._base + spec.path,
            params=spec.params,
            json=spec.json,
            headers=spec.headers,
            auth=self._auth,
        )
        raise_for_problem(response)
        return response

    async def request(self, spec: RequestSpec) -> Any:
        """Send one call (retried when idempotent) and return its JSON body (None for 204)."""
        if not spec.idempotent or self._retry.attempts == 1:
            return response_body(await self._once(spec))
        response: httpx.Response = await AsyncRetrying(**retry_args(self._retry, spec))(
            self._once, spec
        )
        return response_body(response)

    async def stream_to(self, spec: RequestSpec, out: IO[bytes]) -> int:
        """Send one call and copy its body into `out` as it arrives (one attempt)."""
        request = self._http.build_request(
            spec.method, self._base + spec.path, params=spec.params, headers=spec.headers
        )
        response = await self._http.send(request, auth=self._auth, stream=True)
        try:
            if response.is_error:
                await response.aread()
                raise_for_problem(response)
            written = 0
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                written += len(chunk)
            return written
        finally:
            await response.aclose()
