"""Webhook endpoints: an organization's admin registers, changes, pauses, deletes
them and rotates their secrets (API.md, second wave; Standard Webhooks).

- **Secrets** are 32 random bytes, shown once as `whsec_...` (service/events/signing.py)
  and stored only sealed with the key directory's webhook secrets key
  (crypto.seal_secret), so a copy of the database alone does not reveal one. A
  rotation keeps the previous secret signing for ROTATION_OVERLAP, so receivers
  can switch without losing a delivery.
- **Addresses** are checked at registration and on every change of URL
  (service/events/ssrf.py): `https` in production, and every address the host
  resolves to must be public unless its network is allowed by the deployer. The
  dispatcher checks again on every connection (DNS can change).
- **Endpoints hold no free text** (no description): the audit entry and the
  endpoint name identifiers, event types and the URL's host, never its path or
  query (which may carry a receiver's token) and never a secret.
- A deleted endpoint is kept (deleted_at) for its deliveries' history, its secrets
  are erased and its pending deliveries cancelled.

Every change takes the audit head first (service/audit/ordering.py: the lock order),
then reads and writes the endpoint, so two concurrent changes of one endpoint (two
rotations) apply one after the other. Checking a URL resolves a name: it runs
before any lock is taken.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service import crypto
from service.audit.log import AuditEvent, append
from service.audit.ordering import lock_head
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.errors import NotFoundError, ProblemItem, RuleViolationError
from service.events import signing, ssrf
from service.events.catalog import EventType
from service.events.models import WebhookDelivery, WebhookEndpoint
from service.events.webhook_schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from service.web.pagination import PageRequest, Position, next_position

# The previous secret keeps signing this long after a rotation.
ROTATION_OVERLAP: Final = timedelta(hours=24)
# Each event writes one delivery per subscribed endpoint: a bound on the fan-out.
MAX_ENDPOINTS_PER_ORG: Final = 20
# A name that does not resolve within this time is refused (the lookup runs inside
# the request's transaction, which on SQLite holds the one write lock).
RESOLVE_TIMEOUT_SECONDS: Final = 5.0
# Sent only by POST .../test, to the one endpoint tested.
NOT_SUBSCRIBABLE: Final = frozenset({EventType.webhook_test})


@dataclass(frozen=True)
class UrlRules:
    """Where this deployment lets webhooks go (from settings, by the router)."""

    require_https: bool
    allowed: tuple[ssrf.Network, ...]


def visible_endpoints(principal: Principal) -> Select[WebhookEndpoint]:
    """The endpoints a principal may manage: its own organization's, not deleted.
    Callers check the role first (require_own_org)."""
    return select(WebhookEndpoint).where(
        WebhookEndpoint.org_id == principal.org_id, WebhookEndpoint.deleted_at.is_(None)
    )


def host_of(url: str) -> str | None:
    """The URL's host, for audit entries: never its path or query."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


async def url_problems(url: str, rules: UrlRules) -> list[ProblemItem]:
    """Everything wrong with `url` as a webhook address, its resolution included."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return [ProblemItem("/url", "the URL must not contain spaces or control characters")]
    problems = ssrf.url_problems(url, require_https=rules.require_https)
    if problems:
        return [ProblemItem("/url", p) for p in problems]
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            await ssrf.resolve(host, port, rules.allowed)
    except ssrf.BlockedAddressError as error:
        return [ProblemItem("/url", str(error))]
    except TimeoutError:
        return [ProblemItem("/url", "the host does not resolve in time")]
    return []


def event_type_problems(types: Sequence[EventType]) -> list[ProblemItem]:
    problems = []
    seen: set[EventType] = set()
    for i, kind in enumerate(types):
        if kind in NOT_SUBSCRIBABLE:
            problems.append(
                ProblemItem(f"/event_types/{i}", f"{kind.value} is sent by POST .../test only")
            )
        if kind in seen:
            problems.append(ProblemItem(f"/event_types/{i}", "named twice"))
        seen.add(kind)
    return problems


def signing_secrets(endpoint: WebhookEndpoint, *, key: bytes, now: datetime) -> list[bytes]:
    """The secrets that sign (v1) a delivery to `endpoint` at `now`: the current one,
    and during a rotation's overlap the previous one too."""
    secrets = [crypto.open_secret(key, endpoint.secret_sealed)]
    if (
        endpoint.previous_secret_sealed is not None
        and endpoint.previous_until is not None
        and now < endpoint.previous_until
    ):
        secrets.append(crypto.open_secret(key, endpoint.previous_secret_sealed))
    return secrets


def _new_secret(key: bytes) -> tuple[bytes, str]:
    """(sealed, shown-once text) of a fresh secret."""
    raw = signing.new_secret()
    return crypto.seal_secret(key, raw), signing.format_secret(raw)


async def audit_change(
    session: AsyncSession,
    action: str,
    principal: Principal,
    details: dict[str, Any],
    clock: Clock,
) -> None:
    event = AuditEvent(action, principal, counterpart_org_id=principal.org_id, details=details)
    await append(session, event, clock=clock)


async def find_endpoint(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    require_own_org(principal, org_id, Role.org_admin)
    stmt = visible_endpoints(principal).where(WebhookEndpoint.id == endpoint_id)
    endpoint = (await session.scalars(stmt)).one_or_none()
    if endpoint is None:
        raise NotFoundError()
    return endpoint


async def lock_endpoint(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """The endpoint read again under the audit head (a change waits for the last)."""
    await lock_head(session)
    stmt = (
        visible_endpoints(principal)
        .where(WebhookEndpoint.id == endpoint_id)
        .execution_options(populate_existing=True)
    )
    endpoint = (await session.scalars(stmt)).one_or_none()
    if endpoint is None:
        raise NotFoundError()
    return endpoint


async def get(
    session: AsyncSession, *, principal: Principal, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    return await find_endpoint(session, principal, org_id, endpoint_id)


async def list_endpoints(
    session: AsyncSession, *, principal: Principal, org_id: uuid.UUID, page: PageRequest
) -> tuple[list[WebhookEndpoint], Position | None]:
    require_own_org(principal, org_id, Role.org_admin)
    stmt = visible_endpoints(principal)
    if page.after is not None:
        stmt = stmt.where(
            (WebhookEndpoint.created_at > page.after.at)
            | ((WebhookEndpoint.created_at == page.after.at) & (WebhookEndpoint.id > page.after.id))
        )
    stmt = stmt.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(page.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return rows[: page.limit], next_position(rows, page.limit)


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    data: WebhookEndpointCreate,
    rules: UrlRules,
    sealing_key: bytes,
    clock: Clock,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its secret, which is never shown again."""
    require_own_org(principal, org_id, Role.org_admin)
    problems = await url_problems(data.url, rules) + event_type_problems(data.event_types)
    if problems:
        raise RuleViolationError(errors=problems)
    await lock_head(session)
    count = await session.scalar(
        select(func.count()).select_from(visible_endpoints(principal).subquery())
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_ORG:
        raise RuleViolationError(
            errors=[ProblemItem("/", f"at most {MAX_ENDPOINTS_PER_ORG} endpoints")]
        )
    sealed, shown = _new_secret(sealing_key)
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        org_id=org_id,
        url=data.url,
        event_types=[t.value for t in data.event_types],
        paused=False,
        failing_since=None,
        secret_sealed=sealed,
        previous_secret_sealed=None,
        previous_until=None,
        created_at=clock.now(),
        created_by=principal.label,
        deleted_at=None,
    )
    session.add(endpoint)
    await session.flush()
    details = {
        "endpoint_id": str(endpoint.id),
        "host": host_of(endpoint.url),
        "event_types": endpoint.event_types,
    }
    await audit_change(session, "webhook.created", principal, details, clock)
    return endpoint, shown


async def update_endpoint(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    data: WebhookEndpointUpdate,
    rules: UrlRules,
    clock: Clock,
) -> WebhookEndpoint:
    """Change the URL, the event types or `paused`; what is left out is kept."""
    await find_endpoint(session, principal, org_id, endpoint_id)
    problems = []
    if data.url is not None:
        problems += await url_problems(data.url, rules)
    if data.event_types is not None:
        problems += event_type_problems(data.event_types)
    if problems:
        raise RuleViolationError(errors=problems)
    endpoint = await lock_endpoint(session, principal, org_id, endpoint_id)
    details: dict[str, Any] = {"endpoint_id": str(endpoint.id)}
    if data.url is not None and data.url != endpoint.url:
        endpoint.url = data.url
        details["host"] = host_of(data.url)
    if data.event_types is not None:
        types = [t.value for t in data.event_types]
        if types != endpoint.event_types:
            endpoint.event_types = types
            details["event_types"] = types
    if data.paused is not None and data.paused != endpoint.paused:
        endpoint.paused = data.paused
        details["paused"] = data.paused
    if len(details) > 1:  # a request that changes nothing writes nothing
        await session.flush()
        await audit_change(session, "webhook.updated", principal, details, clock)
    return endpoint


async def delete(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    clock: Clock,
) -> None:
    """Soft delete: the row stays for its deliveries' history; its secrets are
    erased and its pending deliveries cancelled."""
    await find_endpoint(session, principal, org_id, endpoint_id)
    endpoint = await lock_endpoint(session, principal, org_id, endpoint_id)
    endpoint.deleted_at = clock.now()
    endpoint.secret_sealed = b""
    endpoint.previous_secret_sealed = None
    endpoint.previous_until = None
    await session.flush()
    cancelled = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending")
        .values(status="cancelled")
    )
    details = {"endpoint_id": str(endpoint.id), "cancelled": cancelled.rowcount}  # type: ignore[attr-defined]
    await audit_change(session, "webhook.deleted", principal, details, clock)


async def rotate_secret(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    sealing_key: bytes,
    clock: Clock,
) -> tuple[WebhookEndpoint, str]:
    """A new secret, shown once; the current one keeps signing for ROTATION_OVERLAP
    (a second rotation within the overlap ends the oldest secret's at once)."""
    await find_endpoint(session, principal, org_id, endpoint_id)
    endpoint = await lock_endpoint(session, principal, org_id, endpoint_id)
    now = clock.now()
    sealed, shown = _new_secret(sealing_key)
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_until = now + ROTATION_OVERLAP
    endpoint.secret_sealed = sealed
    await session.flush()
    details = {
        "endpoint_id": str(endpoint.id),
        "previous_until": endpoint.previous_until.isoformat(),
    }
    await audit_change(session, "webhook.secret_rotated", principal, details, clock)
    return endpoint, shown
