"""An organization's people: its principals with their last-seen times, turning
one off (or on again) at once, and revoking a single token (org_admin).

Twin modules: `_async_admin` (the one source) and `_sync_admin`, generated from
it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from accord_client._http import Id, afollow_cursors
from accord_client._models import Page
from accord_client._protocol import RequestSpec, page_of, query
from accord_client.schemas import PrincipalRead, TokenRevoked


class AsyncAdminMethods:
    """Principals and token revocation, for `AsyncAccordClient`."""

    async def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    async def list_principals(
        self, org_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[PrincipalRead]:
        """Every principal of the organization seen or (de)activated, with the time of
        its last successful request."""
        params = query(limit=limit, cursor=cursor)
        spec = RequestSpec("GET", f"/v1/organizations/{org_id}/principals", params=params)
        return page_of(await self.request(spec))

    async def iter_principals(
        self, org_id: Id, *, page_size: int | None = None
    ) -> AsyncIterator[PrincipalRead]:
        async def fetch(cursor: str | None) -> Page[PrincipalRead]:
            return await self.list_principals(org_id, limit=page_size, cursor=cursor)

        async for item in afollow_cursors(fetch):
            yield item

    async def deactivate_principal(self, org_id: Id, *, subject: str) -> PrincipalRead:
        """Cut the principal off from its very next request, whatever token it holds."""
        spec = RequestSpec(
            "POST",
            f"/v1/organizations/{org_id}/principals/deactivate",
            json={"subject": subject},
        )
        return cast(PrincipalRead, await self.request(spec))

    async def reactivate_principal(self, org_id: Id, *, subject: str) -> PrincipalRead:
        spec = RequestSpec(
            "POST",
            f"/v1/organizations/{org_id}/principals/reactivate",
            json={"subject": subject},
        )
        return cast(PrincipalRead, await self.request(spec))

    async def revoke_token(self, org_id: Id, *, jti: str) -> TokenRevoked:
        """Revoke one staff token of the organization by its `jti`, from the next request."""
        spec = RequestSpec("POST", f"/v1/organizations/{org_id}/revoked-tokens", json={"jti": jti})
        return cast(TokenRevoked, await self.request(spec))
