"""Webhook endpoints, their deliveries, and the service's webhook signing key
(API.md, second wave). An organization's admin manages its own endpoints: another
organization's are 404, other roles 403 (service/auth/authorize.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from service.auth.dependencies import CurrentPrincipal
from service.errors import rule_violation
from service.events import signing, ssrf, webhook_deliveries, webhooks
from service.events.models import WebhookEndpoint
from service.events.webhook_deliveries import DeliveryView
from service.events.webhook_schemas import (
    WebhookAttemptRead,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
    WebhookSigningKey,
)
from service.keyring import Keyring
from service.settings import Environment
from service.web.deps import AppClock, DbSession
from service.web.params import LIMIT_DESCRIPTION, Pages
from service.web.problems import ALL_PROBLEMS

router = APIRouter(tags=["webhooks"])

ENDPOINTS = "/v1/organizations/{org_id}/webhooks"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
DeliveryStatus = Annotated[
    str | None,
    Query(
        alias="status",
        pattern="^(pending|succeeded|failed|cancelled)$",
        description="Only deliveries in this state",
    ),
]


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def _rules(request: Request) -> webhooks.UrlRules:
    settings = request.app.state.settings
    return webhooks.UrlRules(
        require_https=settings.environment is Environment.production,
        allowed=ssrf.parse_networks(settings.webhook_allowed_networks),
    )


def endpoint_read(endpoint: WebhookEndpoint, now: datetime) -> WebhookEndpointRead:
    overlap = endpoint.previous_until
    return WebhookEndpointRead(
        id=endpoint.id,
        org_id=endpoint.org_id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        paused=endpoint.paused,
        failing_since=endpoint.failing_since,
        previous_secret_until=overlap if overlap is not None and overlap > now else None,
        created_at=endpoint.created_at,
        created_by=endpoint.created_by,
    )


def _with_secret(
    endpoint: WebhookEndpoint, secret: str, now: datetime
) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**endpoint_read(endpoint, now).model_dump(), secret=secret)


def delivery_read(view: DeliveryView) -> WebhookDeliveryRead:
    d = view.delivery
    return WebhookDeliveryRead(
        id=d.id,
        event_id=d.event_id,
        event_type=view.event_type,
        event_seq=d.event_seq,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        history=[
            WebhookAttemptRead(
                at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms
            )
            for a in view.history
        ],
    )


@router.post(ENDPOINTS, status_code=status.HTTP_201_CREATED, responses=ALL_PROBLEMS)
async def create_webhook(
    org_id: uuid.UUID,
    body: WebhookEndpointCreate,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookEndpointWithSecret:
    """Register an endpoint. The response carries its signing secret, shown this
    once: store it (`whsec_...`, any Standard Webhooks library takes it)."""
    endpoint, secret = await webhooks.create(
        session,
        principal=principal,
        org_id=org_id,
        data=body,
        rules=_rules(request),
        sealing_key=_keyring(request).webhook_secrets_key,
        clock=clock,
    )
    return _with_secret(endpoint, secret, clock.now())


@router.get(ENDPOINTS, responses=ALL_PROBLEMS)
async def list_webhooks(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    pages: Pages,
    clock: AppClock,
) -> WebhookEndpointPage:
    binding = pages.codec.binding(
        principal.subject + "|" + str(principal.org_id), "webhooks", {"org_id": str(org_id)}
    )
    rows, position = await webhooks.list_endpoints(
        session, principal=principal, org_id=org_id, page=pages.page(binding)
    )
    now = clock.now()
    return WebhookEndpointPage(
        items=[endpoint_read(e, now) for e in rows],
        next_cursor=pages.next_cursor(position, binding),
    )


@router.get(ENDPOINT, responses=ALL_PROBLEMS)
async def get_webhook(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookEndpointRead:
    endpoint = await webhooks.get(
        session, principal=principal, org_id=org_id, endpoint_id=endpoint_id
    )
    return endpoint_read(endpoint, clock.now())


@router.patch(ENDPOINT, responses=ALL_PROBLEMS)
async def update_webhook(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookEndpointRead:
    """Change the URL or event types, or pause (`paused`: true) and resume."""
    endpoint = await webhooks.update_endpoint(
        session,
        principal=principal,
        org_id=org_id,
        endpoint_id=endpoint_id,
        data=body,
        rules=_rules(request),
        clock=clock,
    )
    return endpoint_read(endpoint, clock.now())


@router.delete(ENDPOINT, status_code=status.HTTP_204_NO_CONTENT, responses=ALL_PROBLEMS)
async def delete_webhook(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> Response:
    """Delete the endpoint: nothing more is sent to it, its pending deliveries are
    cancelled and its secrets erased."""
    await webhooks.delete(
        session, principal=principal, org_id=org_id, endpoint_id=endpoint_id, clock=clock
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(ENDPOINT + "/rotate-secret", responses=ALL_PROBLEMS)
async def rotate_webhook_secret(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookEndpointWithSecret:
    """A new secret, shown this once; the previous one keeps signing too for 24 hours
    (`previous_secret_until`)."""
    endpoint, secret = await webhooks.rotate_secret(
        session,
        principal=principal,
        org_id=org_id,
        endpoint_id=endpoint_id,
        sealing_key=_keyring(request).webhook_secrets_key,
        clock=clock,
    )
    return _with_secret(endpoint, secret, clock.now())


@router.get(ENDPOINT + "/deliveries", responses=ALL_PROBLEMS)
async def list_deliveries(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    state: DeliveryStatus = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="`next_before` of the previous page")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description=LIMIT_DESCRIPTION)] = None,
) -> WebhookDeliveryPage:
    """The endpoint's recent deliveries, newest event first, with the status codes of
    their most recent attempts."""
    settings = request.app.state.settings
    if limit is not None and limit > settings.page_size_max:
        raise rule_violation(("/limit", f"at most {settings.page_size_max}"))
    views, next_before = await webhook_deliveries.recent(
        session,
        principal=principal,
        org_id=org_id,
        endpoint_id=endpoint_id,
        before=before,
        status=state,
        limit=limit or settings.page_size_default,
    )
    return WebhookDeliveryPage(items=[delivery_read(v) for v in views], next_before=next_before)


@router.post(
    ENDPOINT + "/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses=ALL_PROBLEMS,
)
async def redeliver(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookDeliveryRead:
    """Send the delivery again, now: the same event, so the same `webhook-id`."""
    view = await webhook_deliveries.redeliver(
        session,
        principal=principal,
        org_id=org_id,
        endpoint_id=endpoint_id,
        delivery_id=delivery_id,
        clock=clock,
    )
    return delivery_read(view)


@router.post(ENDPOINT + "/test", status_code=status.HTTP_202_ACCEPTED, responses=ALL_PROBLEMS)
async def test_webhook(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    clock: AppClock,
) -> WebhookDeliveryRead:
    """Send a `webhook.test` event to this endpoint only (it also appears in the
    organization's event feed)."""
    view = await webhook_deliveries.send_test(
        session, principal=principal, org_id=org_id, endpoint_id=endpoint_id, clock=clock
    )
    return delivery_read(view)


@router.get("/v1/webhooks/signing-key", responses=ALL_PROBLEMS)
async def webhook_signing_key(request: Request, principal: CurrentPrincipal) -> WebhookSigningKey:
    """The service's Ed25519 key that signs every webhook (`v1a` in
    `webhook-signature`), so a receiver can verify without a shared secret."""
    return WebhookSigningKey(
        public_key=signing.format_public_key(_keyring(request).webhook.public_key)
    )
