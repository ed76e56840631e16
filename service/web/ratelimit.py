"""Rate limits (API.md "Security rules"; SECURITY-TESTS G07), on the `limits`
library's moving-window strategy.

Three limits, each a `limits` string such as "60/minute", set in service/settings.py:
- records requests created, per principal (organization and token subject);
- survivor access links created, per principal;
- failed authentications, per client address. Once over it, each further failure
  is answered 429 with Retry-After instead of 401; a valid token still works, so
  one misbehaving client cannot lock out colleagues behind the same address.

A refused request is answered 429 with `Retry-After` before any database work, so
it stores nothing. Counters live in `rate_limit_storage_url`: "memory://" (the
default) keeps them per process; with several app nodes, point every node at one
shared store (for example "redis://host:6379") or each node allows the full rate.
Keys hold identifiers only (organization id, token subject, client address).
"""

from __future__ import annotations

import math
import time
from enum import StrEnum

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from service.errors import RateLimitedError
from service.settings import Settings


class Limit(StrEnum):
    records_requests = "records-requests"
    access_links = "access-links"
    failed_auth = "failed-auth"


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        url = settings.rate_limit_storage_url
        storage = storage_from_string(url if url.startswith("async+") else f"async+{url}")
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[Limit, RateLimitItem] = {
            Limit.records_requests: parse(settings.rate_limit_records_requests),
            Limit.access_links: parse(settings.rate_limit_access_links),
            Limit.failed_auth: parse(settings.rate_limit_failed_auth),
        }

    async def _refuse(self, item: RateLimitItem, key: str) -> RateLimitedError:
        stats = await self._limiter.get_window_stats(item, key)
        return RateLimitedError(max(1, math.ceil(stats.reset_time - time.time())))

    async def hit(self, limit: Limit, key: str) -> None:
        """Count one use; raise 429 if it is over the limit (the use is refused)."""
        item = self._items[limit]
        if not await self._limiter.hit(item, key):
            raise await self._refuse(item, key)


def limits_of(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


def client_address(request: Request) -> str:
    """The peer address as the server sees it (behind a proxy, run uvicorn with
    --proxy-headers and --forwarded-allow-ips so this is the client's)."""
    return request.client.host if request.client else "unknown"
