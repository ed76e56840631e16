"""The event feed and an organization's webhook endpoints.

Every request is built and every answer parsed by `accord_client._events_protocol`.
Twin modules: `_async_events` (the one source) and `_sync_events`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from accord_client import _events_protocol as proto
from accord_client._events_protocol import DeliveryStatus, Id
from accord_client._http import afollow_cursors
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


class AsyncEventMethods:
    """The event feed and webhook endpoints, for `AsyncAccordClient`."""

    async def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    # -- the event feed -------------------------------------------------------------------

    async def events(self, *, after: int = 0, limit: int | None = None) -> EventPage:
        """Your organization's events after number `after`, oldest first (the same
        events its webhooks receive). Reading changes nothing: keep `next_after`."""
        spec = proto.events_request(after=after, limit=limit)
        return proto.event_page(await self.request(spec))

    async def iter_events(
        self, *, after: int = 0, page_size: int | None = None
    ) -> AsyncIterator[Event]:
        """Every event after `after`, page by page, until caught up."""
        next_after: int | None = after
        while next_after is not None:
            page = await self.events(after=next_after, limit=page_size)
            for event in page.items:
                yield event
            next_after = proto.read_on_from(page, next_after)

    # -- webhook endpoints (org_admin) ---------------------------------------------------

    async def create_webhook(
        self, org_id: Id, *, url: str, event_types: Iterable[str]
    ) -> CreatedWebhook:
        """Register an endpoint; the result's `secret` is shown this once."""
        spec = proto.create_webhook_request(org_id, url=url, event_types=event_types)
        return proto.created_webhook(await self.request(spec))

    async def list_webhooks(
        self, org_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WebhookEndpoint]:
        spec = proto.list_webhooks_request(org_id, limit=limit, cursor=cursor)
        return page_of(await self.request(spec))

    async def iter_webhooks(
        self, org_id: Id, *, page_size: int | None = None
    ) -> AsyncIterator[WebhookEndpoint]:
        async def fetch(cursor: str | None) -> Page[WebhookEndpoint]:
            return await self.list_webhooks(org_id, limit=page_size, cursor=cursor)

        async for item in afollow_cursors(fetch):
            yield item

    async def get_webhook(self, org_id: Id, webhook_id: Id) -> WebhookEndpoint:
        spec = proto.get_webhook_request(org_id, webhook_id)
        return cast(WebhookEndpoint, await self.request(spec))

    async def update_webhook(
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
        return cast(WebhookEndpoint, await self.request(spec))

    async def delete_webhook(self, org_id: Id, webhook_id: Id) -> None:
        await self.request(proto.delete_webhook_request(org_id, webhook_id))

    async def rotate_webhook_secret(self, org_id: Id, webhook_id: Id) -> CreatedWebhook:
        """A new secret, shown this once; the previous one keeps signing for an overlap.
        Never retried: a resend would rotate again and lose the secret shown."""
        spec = proto.rotate_webhook_secret_request(org_id, webhook_id)
        return proto.created_webhook(await self.request(spec))

    async def webhook_deliveries(
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
        return proto.delivery_page(await self.request(spec))

    async def iter_webhook_deliveries(
        self,
        org_id: Id,
        webhook_id: Id,
        *,
        status: DeliveryStatus | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[WebhookDelivery]:
        before: int | None = None
        while True:
            page = await self.webhook_deliveries(
                org_id, webhook_id, status=status, before=before, limit=page_size
            )
            for item in page.items:
                yield item
            if page.next_before is None:
                return
            before = page.next_before

    async def redeliver_webhook(
        self, org_id: Id, webhook_id: Id, delivery_id: Id
    ) -> WebhookDelivery:
        spec = proto.redeliver_webhook_request(org_id, webhook_id, delivery_id)
        return cast(WebhookDelivery, await self.request(spec))

    async def test_webhook(self, org_id: Id, webhook_id: Id) -> WebhookDelivery:
        """Send a `webhook.test` event to the endpoint now."""
        spec = proto.webhook_test_request(org_id, webhook_id)
        return cast(WebhookDelivery, await self.request(spec))

    async def webhook_signing_key(self) -> str:
        """The service's Ed25519 webhook key (`whpk_...`) for `verify_webhook(public_key=)`."""
        return proto.signing_key(await self.request(proto.signing_key_request()))
