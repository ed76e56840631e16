"""What the sync and async clients share for the event feed and webhook endpoints:
pure request building and response parsing (one place, so the twins cannot drift).
Nothing here performs I/O.

Retries follow RequestSpec's rule: reads and DELETE are retried; the POSTs and the
PATCH are not. A resent rotate-secret would rotate twice and lose the secret the
first answer showed; a resent create, redeliver or test would send or store twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal, cast

from accord_client._models import (
    JSON,
    CreatedWebhook,
    DeliveryPage,
    Event,
    EventPage,
    WebhookDelivery,
    WebhookEndpoint,
)
from accord_client._protocol import RequestSpec, query

Id = str | uuid.UUID
DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


def events_request(*, after: int, limit: int | None) -> RequestSpec:
    if after < 0:
        raise ValueError("after must not be negative")
    return RequestSpec("GET", "/v1/events", params=query(after=after, limit=limit))


def event_page(body: JSON) -> EventPage:
    return EventPage(items=cast(list[Event], list(body["items"])), next_after=body["next_after"])


def read_on_from(page: EventPage, after: int) -> int | None:
    """The `after` of the next page, or None when this page was the last (caught up)."""
    if not page.items or page.next_after <= after:
        return None
    return page.next_after


def _webhooks(org_id: Id, webhook_id: Id | None = None, *rest: str) -> str:
    path = f"/v1/organizations/{org_id}/webhooks"
    if webhook_id is not None:
        path += f"/{webhook_id}"
    return "/".join((path, *rest))


def create_webhook_request(org_id: Id, *, url: str, event_types: Iterable[str]) -> RequestSpec:
    body = {"url": url, "event_types": list(event_types)}
    return RequestSpec("POST", _webhooks(org_id), json=body)


def list_webhooks_request(org_id: Id, *, limit: int | None, cursor: str | None) -> RequestSpec:
    return RequestSpec("GET", _webhooks(org_id), params=query(limit=limit, cursor=cursor))


def get_webhook_request(org_id: Id, webhook_id: Id) -> RequestSpec:
    return RequestSpec("GET", _webhooks(org_id, webhook_id))


def update_webhook_request(
    org_id: Id,
    webhook_id: Id,
    *,
    url: str | None,
    event_types: Iterable[str] | None,
    paused: bool | None,
) -> RequestSpec:
    """PATCH with only the fields given (pause or resume with `paused=`)."""
    body: JSON = {}
    if url is not None:
        body["url"] = url
    if event_types is not None:
        body["event_types"] = list(event_types)
    if paused is not None:
        body["paused"] = paused
    if not body:
        raise ValueError("give at least one of url, event_types, paused")
    return RequestSpec("PATCH", _webhooks(org_id, webhook_id), json=body)


def delete_webhook_request(org_id: Id, webhook_id: Id) -> RequestSpec:
    return RequestSpec("DELETE", _webhooks(org_id, webhook_id))


def rotate_webhook_secret_request(org_id: Id, webhook_id: Id) -> RequestSpec:
    return RequestSpec("POST", _webhooks(org_id, webhook_id, "rotate-secret"))


def webhook_deliveries_request(
    org_id: Id,
    webhook_id: Id,
    *,
    status: DeliveryStatus | None,
    before: int | None,
    limit: int | None,
) -> RequestSpec:
    params = query(status=status, before=before, limit=limit)
    return RequestSpec("GET", _webhooks(org_id, webhook_id, "deliveries"), params=params)


def redeliver_webhook_request(org_id: Id, webhook_id: Id, delivery_id: Id) -> RequestSpec:
    path = _webhooks(org_id, webhook_id, "deliveries", str(delivery_id), "redeliver")
    return RequestSpec("POST", path)


def webhook_test_request(org_id: Id, webhook_id: Id) -> RequestSpec:
    return RequestSpec("POST", _webhooks(org_id, webhook_id, "test"))


def signing_key_request() -> RequestSpec:
    return RequestSpec("GET", "/v1/webhooks/signing-key")


# --- parsing -----------------------------------------------------------------------------


class UnexpectedResponseError(ValueError):
    """The service answered 2xx without a field the contract promises."""


def created_webhook(body: Any) -> CreatedWebhook:
    """The endpoint and its one-time secret, from a create or rotate-secret answer."""
    if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
        raise UnexpectedResponseError("the answer carries no webhook secret")
    endpoint = {k: v for k, v in body.items() if k != "secret"}
    return CreatedWebhook(endpoint=cast(WebhookEndpoint, endpoint), secret=body["secret"])


def delivery_page(body: JSON) -> DeliveryPage:
    items = cast(list[WebhookDelivery], list(body["items"]))
    return DeliveryPage(items=items, next_before=body.get("next_before"))


def signing_key(body: Any) -> str:
    key = body.get("public_key") if isinstance(body, dict) else None
    if not isinstance(key, str):
        raise UnexpectedResponseError("the answer carries no public_key")
    return key
