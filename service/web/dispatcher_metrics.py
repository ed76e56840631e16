"""The webhook dispatcher child's metrics on the API workers' `/metrics`.

On PostgreSQL `accord serve` runs its webhook dispatcher in a child process of its
own (service/events/dispatch_process.py), which serves its metrics on a loopback
port and whose address the workers read (ACCORD_WEBHOOK_DISPATCH_METRICS_URL). A
worker's `/metrics` is then its own registry without its `accord_webhook_*` families
(it dispatches nothing: they stay at zero) followed by the child's `accord_webhook_*`
families, and nothing else of the child's, so that every family appears once. When
the child cannot be reached within a second (it is being started again, or stopped),
the webhook families are absent and `accord_webhook_dispatcher_up` is 0.

Without that address (SQLite, ACCORD_WEBHOOK_DISPATCH_PROCESS=off, the dispatcher
run apart) `/metrics` is the worker's own registry, as it always was.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Iterable
from typing import Final

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from service.web.observability import Metrics

WEBHOOK_PREFIX: Final = "accord_webhook_"
DISPATCHER_UP: Final = "accord_webhook_dispatcher_up"
# The longest a scrape of the workers waits for the child's metrics.
FETCH_TIMEOUT_SECONDS: Final = 1.0
# The child's exposition is a few kilobytes; more is not the child's.
_MOST_BYTES: Final = 1 << 20


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _is_webhook(name: str) -> bool:
    return name.startswith(WEBHOOK_PREFIX) and name != DISPATCHER_UP


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def child_webhook_families(exposition: str) -> list[Metric] | None:
    """The `accord_webhook_*` families of the child's exposition (its other families,
    and its own `accord_webhook_dispatcher_up`, left out); None if it does not parse."""
    try:
        families = list(text_string_to_metric_families(exposition))
    except (ValueError, IndexError):  # not the text format
        return None
    return [family for family in families if _is_webhook(family.name)]


def merged_exposition(metrics: Metrics, child_exposition: str | None) -> bytes:
    """This process's metrics with the child's webhook families in place of its own,
    and `accord_webhook_dispatcher_up` 1 if the child's exposition was read (None: it
    was not), else 0 and no webhook family. Prometheus text format."""
    child = None if child_exposition is None else child_webhook_families(child_exposition)
    metrics.webhook_dispatcher_up.set(0 if child is None else 1)
    own = [family for family in metrics.registry.collect() if not _is_webhook(family.name)]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(own + (child or [])))
    return generate_latest(registry)


async def fetch_exposition(url: str) -> str | None:
    """The child's metrics (Prometheus text), or None if it did not answer 200 within
    FETCH_TIMEOUT_SECONDS."""
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
            # Plain HTTP to a loopback address (settings.py refuses anything else), no
            # proxy from the environment; the certificate store is loaded once, not at
            # every scrape (some 20 ms of the event loop each time), though unused.
            async with httpx.AsyncClient(
                timeout=FETCH_TIMEOUT_SECONDS, trust_env=False, verify=_tls_context()
            ) as client:
                response = await client.get(url)
    except (httpx.HTTPError, TimeoutError):
        return None
    if response.status_code != 200 or len(response.content) > _MOST_BYTES:
        return None
    return response.text


async def exposition(metrics: Metrics, dispatcher_metrics_url: str | None) -> bytes:
    """What `GET /metrics` answers: with the dispatcher child's address, its webhook
    families merged in (merged_exposition); without, this process's registry."""
    if dispatcher_metrics_url is None:
        return generate_latest(metrics.registry)
    return merged_exposition(metrics, await fetch_exposition(dispatcher_metrics_url))
