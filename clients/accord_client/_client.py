# Generated from accord_client/_async_client.py by clients/tools/unasync.py: do not edit.
"""The synchronous client, `AccordClient` (docs: clients/README.md).

`_async_client.py` and the `_async_*` modules of each area are the one source of
both clients: clients/tools/unasync.py writes `_client.py` and the `_sync_*`
modules from them, so the twins differ only in their transport.
"""

from __future__ import annotations

from typing import IO, Any

import httpx
from tenacity import Retrying

from accord_client._exceptions import raise_for_problem
from accord_client._http import DEFAULT_TIMEOUT, BearerAuth, retry_args
from accord_client._protocol import RequestSpec, RetryPolicy, response_body
from accord_client._sync_admin import AdminMethods
from accord_client._sync_audit import AuditMethods
from accord_client._sync_cases import CaseMethods
from accord_client._sync_events import EventMethods
from accord_client._sync_records import RecordsMethods
from accord_client._sync_referrals import ReferralMethods
from accord_client._sync_reports import ReportMethods
from accord_client.witness import CheckpointWitness


class AccordClient(
    ReferralMethods,
    RecordsMethods,
    CaseMethods,
    AuditMethods,
    AdminMethods,
    EventMethods,
    ReportMethods,
):
    """The Accord API client: a method for every `/v1` operation. Use it as a
    context manager (`with`), or call `close()`.

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
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        witness: CheckpointWitness | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = BearerAuth(token)
        self._retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        self._signing_keys: dict[tuple[str, str], bytes] = {}
        self.witness = witness

    def __enter__(self) -> AccordClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __repr__(self) -> str:
        return f"AccordClient(base_url={self._base!r})"

    # -- transport ----------------------------------------------------------------------

    def _once(self, spec: RequestSpec) -> httpx.Response:
        response = self._http.request(
            spec.method,
            self._base + spec.path,
            params=spec.params,
            json=spec.json,
            headers=spec.headers,
            auth=self._auth,
        )
        raise_for_problem(response)
        return response

    def request(self, spec: RequestSpec) -> Any:
        """Send one call (retried when idempotent) and return its JSON body (None for 204)."""
        if not spec.idempotent or self._retry.attempts == 1:
            return response_body(self._once(spec))
        response: httpx.Response = Retrying(**retry_args(self._retry, spec))(self._once, spec)
        return response_body(response)

    def stream_to(self, spec: RequestSpec, out: IO[bytes]) -> int:
        """Send one call and copy its body into `out` as it arrives (one attempt)."""
        request = self._http.build_request(
            spec.method, self._base + spec.path, params=spec.params, headers=spec.headers
        )
        response = self._http.send(request, auth=self._auth, stream=True)
        try:
            if response.is_error:
                response.read()
                raise_for_problem(response)
            written = 0
            for chunk in response.iter_bytes():
                out.write(chunk)
                written += len(chunk)
            return written
        finally:
            response.close()
