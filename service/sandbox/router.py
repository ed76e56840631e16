"""`POST /dev/demo`: the development-only door `accord demo` uses.

Creating organizations and a task force takes a platform administrator, and a
token is only good if the service itself trusts its key. So the service, not the
command, finds or creates the demo federation on its own database and signs a
development token for each demo principal with the development key it verifies
with: a command run from any directory gets tokens that work.

Who can reach it (the trust decision, docs/configuration.md "The sandbox"):

- it exists only in development with the development token key
  (`Settings.serves_demo_endpoint`): production, tests and any deployment with an
  identity provider never mount it, and it is absent from the OpenAPI document;
- it answers only a caller on the loopback interface (the peer address: the
  service does not read forwarding headers), and only under a loopback Host name,
  so a web page that rebinds its own name to 127.0.0.1 is refused;
- it takes a JSON body, which a cross-site form cannot send without a CORS
  preflight that the service never grants.

Anyone who passes these checks could equally read the development key file and
sign tokens: the endpoint grants nothing that the machine's user does not have.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from accord_client.checkpoint import verifier_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.auth.dev_tokens import issue_dev_token
from service.errors import NotFoundError
from service.sandbox.federation import DEMO_ORGS, DEMO_PRINCIPALS, ensure_demo
from service.schemas import StrictInput
from service.web.deps import AppClock, DbSession

log = logging.getLogger("accord.sandbox")

router = APIRouter(include_in_schema=False)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


class DemoRequest(StrictInput):
    """Empty: the body exists so that only a JSON request reaches the endpoint."""


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def from_loopback(request: Request) -> bool:
    """The peer is on this machine and asked for this machine by name."""
    peer = request.client.host if request.client else ""
    try:
        local_peer = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
    return local_peer and _host_name(request.headers.get("host", "").lower()) in LOOPBACK_NAMES


@router.post("/dev/demo", name="sandbox_demo")
async def demo(
    _body: DemoRequest, request: Request, session: DbSession, clock: AppClock
) -> JSONResponse:
    """Find or create the demo federation; a fresh development token for each demo
    principal."""
    if not from_loopback(request):
        raise NotFoundError  # as if the endpoint did not exist
    state = request.app.state
    found = await ensure_demo(session, clock=clock, vocabulary=state.vocabulary)
    settings = state.settings
    sectors = {key: sector.value for key, _name, sector in DEMO_ORGS}
    principals: list[dict[str, Any]] = [
        {
            "name": name,
            "organization": org,
            "org_id": str(found.orgs[org]),
            "sector": sectors[org],
            "roles": [role.value for role in roles],
            "token": issue_dev_token(
                settings, clock=clock, org_id=found.orgs[org], roles=roles, sub=name
            ),
        }
        for name, org, roles in DEMO_PRINCIPALS
    ]
    log.info("demo tokens issued", extra={"event": "sandbox.tokens", "count": len(principals)})
    signer = state.keyring.checkpoint
    body = {
        "created": found.created,
        "organizations": {key: str(value) for key, value in found.orgs.items()},
        "collaboration_id": str(found.collaboration_id),
        "principals": principals,
        "expires_in_seconds": settings.staff_token_max_lifetime_seconds,
        # The key an auditor verifies exports with. Here it comes from the operator's
        # own machine; in a deployment the operator publishes it out of band.
        "audit_verifier_key": verifier_key(settings.audit_origin, signer.public_key),
    }
    return JSONResponse(body)  # Cache-Control: no-store, as every answer (RequestGuard)
