"""The dispatcher's configuration, from the settings (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.events.ssrf import Network, parse_networks
from service.settings import Environment, Settings


@dataclass(frozen=True)
class DispatchConfig:
    allowed: tuple[Network, ...]
    require_https: bool
    concurrency: int
    connect_timeout: float
    timeout: float
    lease: timedelta
    interval: float
    coalesce: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            allowed=parse_networks(settings.webhook_allowed_networks),
            require_https=settings.environment is Environment.production,
            concurrency=settings.webhook_dispatch_concurrency,
            connect_timeout=settings.webhook_connect_timeout_seconds,
            timeout=settings.webhook_timeout_seconds,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            interval=settings.webhook_dispatch_interval_seconds,
            coalesce=settings.webhook_dispatch_coalesce_seconds,
        )
