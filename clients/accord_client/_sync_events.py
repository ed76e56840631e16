# Generated from accord_client/_async_events.py by clients/tools/unasync.py: do not edit.
"""The event feed and an organization's webhook endpoints.

Every request is built and every answer parsed by `accord_client._events_protocol`.
Twin modules: `_async_events` (the one source) and `_sync_events`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

from accord_client import _events_protocol as proto
from accord_client._events_protocol import DeliveryStatus, Id
from accord_client._http import follow_cursors
from accord_client._models import (
    CreatedWebhook,
    DeliveryPage,
    Event,
    EventPage,
    Page,
    WebhookDelivery,
    WebhookEndpoint,
)
from accord_client._protocol import RequestSpec, page_of


class EventMethods:
    """The event feed and webhook endpoints, for `AccordClient`."""

    def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    # -- the event feed -------------------------------------------------------------------

    def events(self, *, after: int = 0, limit: int | None = None) -> EventPage:
        """Your organization's events after number `after`, oldest first (the same
        events its webhooks receive). Reading changes nothing: keep `next_after`."""
        spec = proto.events_request(after=after, limit=limit)
        return proto.event_page(self.request(spec))

    def iter_events(self, *, after: int = 0, page_size: int | None = None) -> Iterator[Event]:
        """Every event after `after`, page by page, until caught up."""
        next_after: int | None = after
        while next_after is not None:
            page = self.events(after=next_after, limit=page_size)
            yield from page.items
            next_after = proto.read_on_from(page, next_after)

    # -- webhook endpoints (org_admin) ---------------------------------------------------

    def create_webhook(self, org_id: Id, *, url: str, event_types: Iterable[str]) -> CreatedWebhook:
        """Register an endpoint; the result's `secret` is shown this once."""
        spec = proto.create_webhook_request(org_id, url=url, event_types=event_types)
        return proto.created_webhook(self.request(spec))

    def list_webhooks(
        self, org_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WebhookEndpoint]:
        spec = proto.list_webhooks_request(org_id, limit=limit, cursor=cursor)
        return page_of(self.request(spec))

    def iter_webhooks(
        self, org_id: Id, *, page_size: int | None = None
    ) -> Iterator[WebhookEndpoint]:
        def fetch(cursor: str | None) -> Page[WebhookEndpoint]:
            return self.list_webhooks(org_id, limit=page_size, cursor=cursor)

        yield from follow_cursors(fetch)

    def get_webhook(self, org_id: Id, webhook_id: Id) -> WebhookEndpoint:
        spec = proto.get_webhook_request(org_id, webhook_id)
        return cast(WebhookEndpoint, self.request(spec))

    def update_webhook(
        self,
        org_id: Id,
        webhook_id: Id,
        *,
        url: str | None = None,
        event_types: Iterable[str] | None = None,
        paused: bool | None = None,
    ) -> WebhookEndpoint:
        """Change the given fields only; `paused=True` pauses, `paused=False` resumes."""
        spec = proto.update_webhook_request(
            org_id, webhook_id, url=url, event_types=event_types, paused=paused
        )
        return cast(WebhookEndpoint, self.request(spec))

    def delete_webhook(self, org_id: Id, webhook_id: Id) -> None:
        self.request(proto.delete_webhook_request(org_id, webhook_id))

    def rotate_webhook_secret(self, org_id: Id, webhook_id: Id) -> CreatedWebhook:
        """A new secret, shown this once; the previous one keeps signing for an overlap.
        Never retried: a resend would rotate again and lose the secret shown."""
        spec = proto.rotate_webhook_secret_request(org_id, webhook_id)
        return proto.created_webhook(self.request(spec))

    def webhook_deliveries(
        self,
        org_id: Id,
        webhook_id: Id,
        *,
        status: DeliveryStatus | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> DeliveryPage:
        """Recent deliveries to the endpoint, newest event first, with the status codes
        of their latest attempts."""
        spec = proto.webhook_deliveries_request(
            org_id, webhook_id, status=status, before=before, limit=limit
        )
        return proto.delivery_page(self.request(spec))

    def iter_webhook_deliveries(
        self,
        org_id: Id,
        webhook_id: Id,
        *,
        status: DeliveryStatus | None = None,
        page_size: int | None = None,
    ) -> Iterator[WebhookDelivery]:
        before: int | None = None
        while True:
            page = self.webhook_deliveries(
                org_id, webhook_id, status=status, before=before, limit=page_size
            )
            yield from page.items
            if page.next_before is None:
                return
            before = page.next_before

    def redeliver_webhook(self, org_id: Id, webhook_id: Id, delivery_id: Id) -> WebhookDelivery:
        spec = proto.redeliver_webhook_request(org_id, webhook_id, delivery_id)
        return cast(WebhookDelivery, self.request(spec))

    def test_webhook(self, org_id: Id, webhook_id: Id) -> WebhookDelivery:
        """Send a `webhook.test` event to the endpoint now."""
        spec = proto.webhook_test_request(org_id, webhook_id)
        return cast(WebhookDelivery, self.request(spec))

    def webhook_signing_key(self) -> str:
        """The service's Ed25519 webhook key (`whpk_...`) for `verify_webhook(public_key=)`."""
        return proto.signing_key(self.request(proto.signing_key_request()))
